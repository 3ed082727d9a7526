package analytics.described_test

import rego.v1

test_undescribed_column_is_reported if {
	count(data.analytics.described.deny) == 1 with input as {"contracts": {"p": {"schema": [{"name": "t", "properties": [{"name": "c"}]}]}}}
}

test_described_column_passes if {
	count(data.analytics.described.deny) == 0 with input as {"contracts": {"p": {"schema": [{"name": "t", "properties": [{"name": "c", "description": "what c is"}]}]}}}
}
