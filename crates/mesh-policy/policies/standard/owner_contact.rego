# METADATA
# title: An owning team with a way to reach it
# description: The product names its team, the team has an owner, and there is a support channel with a URL or an owner with an e-mail address.
# custom:
#   id: owner-contact
#   type: interoperability
#   enforcement: block
package mesh.standard.owner_contact

import rego.v1

deny contains v if {
	not input.product.team.name
	v := {"msg": "the product names no owning team (team.name)", "path": "team.name"}
}

deny contains v if {
	input.product.team.name
	not has_owner
	v := {"msg": "the team has no member with role owner", "path": "team.members"}
}

deny contains v if {
	not reachable
	v := {"msg": "no way to reach the owners: add a support channel with a url, or an owner with an e-mail username", "path": "support"}
}

has_owner if {
	some m in input.product.team.members
	lower(m.role) == "owner"
}

reachable if {
	some s in input.product.support
	startswith(s.url, "http")
}

reachable if {
	some s in input.product.support
	startswith(s.url, "mailto:")
}

reachable if {
	some m in input.product.team.members
	lower(m.role) == "owner"
	email(m.username)
}

# `^[^@\s]+@[^@\s]+\.[^@\s]+$`, with string builtins (cheaper than a regex call in regorus).
email(text) if {
	[user, host] := split(text, "@")
	user != ""
	not contains(text, " ")
	labels := split(host, ".")
	count(labels) > 1
	every label in labels { label != "" }
}
