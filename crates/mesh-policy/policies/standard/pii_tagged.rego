# METADATA
# title: Personal data is tagged and classified
# description: Columns that look like personal data (e-mail, phone, name, address, birth date, national id, ip) carry the tag `pii` and a classification other than public.
# custom:
#   id: pii-tagged
#   type: privacy
#   enforcement: block
package mesh.standard.pii_tagged

import rego.v1

pii_pattern := `(^|_)(email|e_mail|phone|mobile|first_name|last_name|full_name|address|street|birth|birthdate|date_of_birth|ssn|passport|national_id|ip_address)(_|$)`

personal(prop) if regex.match(pii_pattern, lower(prop.name))

personal(prop) if "pii" in object.get(prop, "tags", [])

deny contains v if {
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	personal(prop)
	not "pii" in object.get(prop, "tags", [])
	v := {"msg": sprintf("column %s.%s of port %s looks like personal data but is not tagged pii", [object.name, prop.name, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s.tags", [port, object.name, prop.name])}
}

deny contains v if {
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	personal(prop)
	lower(object.get(prop, "classification", "public")) == "public"
	v := {"msg": sprintf("column %s.%s of port %s holds personal data but is not classified (or classified public)", [object.name, prop.name, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s.classification", [port, object.name, prop.name])}
}
