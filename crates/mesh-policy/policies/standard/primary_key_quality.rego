# METADATA
# title: Primary keys are checked
# description: Every output-port contract has a primary key, and at least one quality rule on it (a duplicateValues or nullValues rule on the key column, or on the table naming it).
# custom:
#   id: primary-key-quality
#   type: quality
#   enforcement: block
package mesh.standard.primary_key_quality

import rego.v1

keys(object) := {p.name | some p in object.properties; p.primaryKey == true}

checked(object, key) if {
	some p in object.properties
	p.name == key
	count(object.get(p, "quality", [])) > 0
}

checked(object, key) if {
	some q in object.get(object, "quality", [])
	key in object.get(object.get(q, "arguments", {}), "properties", [])
}

deny contains v if {
	some port, contract in input.contracts
	keyed := [o | some o in contract.schema; count(keys(o)) > 0]
	count(keyed) == 0
	v := {"msg": sprintf("the contract of port %s declares no primary key", [port]), "path": sprintf("contracts.%s.schema", [port])}
}

deny contains v if {
	some port, contract in input.contracts
	some object in contract.schema
	some key in keys(object)
	not checked(object, key)
	v := {"msg": sprintf("primary key %s.%s of port %s has no quality rule", [object.name, key, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s.quality", [port, object.name, key])}
}
