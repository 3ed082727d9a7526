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

# The words of those names, and the words that can start a match of the pattern.
pii_words := {"email", "e", "phone", "mobile", "first", "last", "full", "address", "street", "birth", "birthdate", "date", "ssn", "passport", "national", "ip"}

# The (lower-case) names of untagged columns that look personal. The usual answer, none, comes
# from one set intersection over the words of all the names; only otherwise does a regex per name
# (a costly call in regorus, which gives each call a fresh match cache) say which ones.
named_personal := set() if {
	words := {word | some word in split(concat("_", untagged), "_")}
	count(words & pii_words) == 0
} else := {name | some name in untagged; regex.match(pii_pattern, name)}

untagged := [lower(prop.name) |
	some contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	not "pii" in object.get(prop, "tags", [])
]

deny contains v if {
	named := named_personal
	count(named) > 0
	some port, contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	named[lower(prop.name)]
	not "pii" in object.get(prop, "tags", [])
	v := {"msg": sprintf("column %s.%s of port %s looks like personal data but is not tagged pii", [table.name, prop.name, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s.tags", [port, table.name, prop.name])}
}

deny contains v if {
	named := named_personal
	some port, contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	lower(object.get(prop, "classification", "public")) == "public"
	personal(prop, named)
	v := {"msg": sprintf("column %s.%s of port %s holds personal data but is not classified (or classified public)", [table.name, prop.name, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s.classification", [port, table.name, prop.name])}
}

personal(prop, _) if "pii" in object.get(prop, "tags", [])

personal(prop, named) if named[lower(prop.name)]
