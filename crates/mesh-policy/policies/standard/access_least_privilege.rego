# METADATA
# title: Ask only for the sensitive columns you need
# description: >-
#   A request for every column of a port that has confidential or restricted columns gets a
#   warning: naming the columns needed lets the owners grant less.
# custom:
#   id: access-least-privilege
#   type: access_control
#   enforcement: warn
#   on: access
package mesh.standard.access_least_privilege

import rego.v1

warn contains {"msg": msg, "path": "request.columns"} if {
	count(input.request.columns) == 0
	count(input.context.sensitive) > 0
	msg := sprintf(
		"asks for every column, including %s: name the columns the purpose needs",
		[concat(", ", input.context.sensitive)],
	)
}
