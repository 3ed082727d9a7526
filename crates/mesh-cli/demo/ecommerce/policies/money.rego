# METADATA
# title: Money is never negative
# description: >-
#   In e-commerce every column holding money (price, amount, revenue) declares a minimum of 0, so
#   a refund booked as a negative sale is caught by the contract, not by finance.
# custom:
#   id: ecommerce-money-non-negative
#   type: data_quality
#   enforcement: block
package ecommerce.money

import rego.v1

money := {"price", "amount", "revenue"}

deny contains v if {
	some port, contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	prop.name in money
	not prop.logicalTypeOptions.minimum == 0
	v := {
		"msg": sprintf("column %s.%s holds money: declare logicalTypeOptions.minimum: 0", [table.name, prop.name]),
		"path": sprintf("contracts.%s.schema.%s.properties.%s", [port, table.name, prop.name]),
	}
}
