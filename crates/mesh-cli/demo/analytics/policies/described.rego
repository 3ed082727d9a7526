# METADATA
# title: Every analytics column says what it holds
# description: >-
#   Analytics products are read by people outside the team: every column has a description.
# custom:
#   id: analytics-columns-described
#   type: interoperability
#   enforcement: warn
package analytics.described

import rego.v1

deny contains v if {
	some port, contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	not prop.description
	v := {
		"msg": sprintf("column %s.%s has no description", [table.name, prop.name]),
		"path": sprintf("contracts.%s.schema.%s.properties.%s", [port, table.name, prop.name]),
	}
}
