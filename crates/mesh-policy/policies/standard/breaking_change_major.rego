# METADATA
# title: Breaking changes need a major version and a deprecation window
# description: >-
#   A breaking change to an output port (from the change report in the context) is only published
#   under a new major version; a version is deprecated with a sunset at least 30 days away.
# custom:
#   id: breaking-change-major
#   type: interoperability
#   enforcement: block
package mesh.standard.breaking_change_major

import rego.v1

major(version) := to_number(split(version, ".")[0])

deny contains v if {
	previous := input.context.previous.version
	input.context.changes.breaking > 0
	major(input.product.version) == major(previous)
	v := {"msg": sprintf("%d breaking change(s) since %s need a new major version, not %s", [input.context.changes.breaking, previous, input.product.version]), "path": "version"}
}

deny contains v if {
	days := input.context.deprecation.sunset_in_days
	days < 30
	v := {"msg": sprintf("the sunset is %d days away; consumers get at least 30 days", [days]), "path": "sunset"}
}
