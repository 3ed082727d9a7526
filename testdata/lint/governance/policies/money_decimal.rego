# METADATA
# title: Money is decimal
# description: Columns holding amounts declare a decimal physical type, never a float.
# custom:
#   id: sales-money-decimal
#   type: quality
#   enforcement: block
package sales.money_decimal

import rego.v1

deny contains v if {
	some port, contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	endswith(prop.name, "amount")
	not startswith(lower(object.get(prop, "physicalType", "")), "decimal")
	v := {"msg": sprintf("column %s.%s holds money but is not decimal", [table.name, prop.name]), "path": sprintf("contracts.%s.schema.%s.properties.%s", [port, table.name, prop.name])}
}
