# METADATA
# title: Sensitive data needs a stated purpose
# description: >-
#   A request for columns classified confidential or restricted says what the data is for, in
#   20 characters or more, so the owning domain can judge it.
# custom:
#   id: access-purpose
#   type: access_control
#   enforcement: block
#   on: access
package mesh.standard.access_purpose

import rego.v1

deny contains {"msg": msg, "path": "request.purpose"} if {
	count(input.context.sensitive) > 0
	count(trim_space(input.request.purpose)) < 20
	msg := sprintf(
		"columns %s are classified confidential or restricted: state a purpose an owner can judge (20 characters or more)",
		[concat(", ", input.context.sensitive)],
	)
}
