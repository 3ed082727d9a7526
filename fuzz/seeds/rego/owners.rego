# METADATA
# title: Every product names an owner
# custom:
#   id: fuzz-seed-owner
#   enforcement: warn
package mesh.fuzzseed.owners

import rego.v1

owners := [m | some m in object.get(input.product, "team", {"members": []}).members; m.role == "owner"]

deny contains "the product has no owner in its team" if count(owners) == 0

deny contains sprintf("owner %s has no e-mail address", [m.username]) if {
	some m in owners
	not contains(m.username, "@")
}
