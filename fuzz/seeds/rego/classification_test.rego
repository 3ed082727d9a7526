package mesh.fuzzseed.classification_test

import rego.v1

import data.mesh.fuzzseed.classification

test_unclassified_pii_is_denied if {
	count(classification.deny) == 1 with input as {"contracts": [{"schema": [{"name": "t", "properties": [{"name": "email", "tags": ["pii"]}]}]}]}
}

test_confidential_pii_is_allowed if {
	count(classification.deny) == 0 with input as {"contracts": [{"schema": [{"name": "t", "properties": [{"name": "email", "tags": ["pii"], "classification": "confidential"}]}]}]}
}
