package ecommerce.money_test

import rego.v1

test_price_without_minimum_is_reported if {
	count(data.ecommerce.money.deny) == 1 with input as {"contracts": {"p": {"schema": [{"name": "t", "properties": [{"name": "price"}]}]}}}
}

test_price_with_minimum_passes if {
	count(data.ecommerce.money.deny) == 0 with input as {"contracts": {"p": {"schema": [{"name": "t", "properties": [{"name": "price", "logicalTypeOptions": {"minimum": 0}}]}]}}}
}
