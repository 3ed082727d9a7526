# METADATA
# title: Products are tagged for discovery
# description: >-
#   The portal's search facets and recommendations lean on tags: every product carries at least
#   one. A global policy of the demo platform, published with `mesh policy publish --global`.
# custom:
#   id: platform-tagged
#   type: interoperability
#   enforcement: warn
package platform.tagged

import rego.v1

deny contains v if {
	count(object.get(input.product, "tags", [])) == 0
	v := {"msg": "the product has no tags: add a few words people search for", "path": "tags"}
}
