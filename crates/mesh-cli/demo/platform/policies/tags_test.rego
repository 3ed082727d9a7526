package platform.tagged_test

import rego.v1

test_untagged_product_is_reported if {
	count(data.platform.tagged.deny) == 1 with input as {"product": {"id": "d.p"}}
}

test_tagged_product_passes if {
	count(data.platform.tagged.deny) == 0 with input as {"product": {"id": "d.p", "tags": ["orders"]}}
}
