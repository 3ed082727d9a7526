# METADATA
# title: Primary keys are checked
# description: Every output-port contract has a primary key, and at least one quality rule on it (a duplicateValues or nullValues rule on the key column, or on the table naming it).
# custom:
#   id: primary-key-quality
#   type: quality
#   enforcement: block
package mesh.standard.primary_key_quality

import rego.v1

deny contains v if {
	some port, contract in input.contracts
	not keyed(contract)
	v := {"msg": sprintf("the contract of port %s declares no primary key", [port]), "path": sprintf("contracts.%s.schema", [port])}
}

deny contains v if {
	some port, contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	prop.primaryKey == true
	count(object.get(prop, "quality", [])) == 0
	not table_rule(table, prop.name)
	v := {"msg": sprintf("primary key %s.%s of port %s has no quality rule", [table.name, prop.name, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s.quality", [port, table.name, prop.name])}
}

keyed(contract) if {
	some table in contract.schema
	some prop in table.properties
	prop.primaryKey == true
}

# A table-level quality rule naming the column.
table_rule(table, column) if {
	some q in object.get(table, "quality", [])
	column in object.get(object.get(q, "arguments", {}), "properties", [])
}
