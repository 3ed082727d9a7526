# Unit tests of the standard pack: one compliant product, and one breach per rule.
package mesh.standard_test

import rego.v1

good := {
	"product": {
		"id": "sales.orders", "name": "Orders", "domain": "sales", "version": "2.0.0",
		"description": {"purpose": "Every order placed in the web shop, one row per order."},
		"customProperties": [
			{"property": "productType", "value": "source"},
			{"property": "dataClassification", "value": "confidential"},
			{"property": "retentionDays", "value": 730},
		],
		"team": {"name": "sales-orders", "members": [{"username": "alice@example.com", "role": "owner"}]},
		"support": [{"channel": "#sales", "url": "https://chat.example.com/sales"}],
		"outputPorts": [{
			"name": "orders", "description": "Orders as placed.", "version": "2.0.0", "contractId": "sales.orders.orders",
			"customProperties": [{"property": "masked", "value": ["card_number"]}],
		}],
	},
	"contracts": {"orders": {
		"id": "sales.orders.orders",
		"schema": [{"name": "orders", "properties": [
			{"name": "order_id", "primaryKey": true, "quality": [{"metric": "duplicateValues", "mustBe": 0}]},
			{"name": "customer_email", "tags": ["pii"], "classification": "confidential", "encryptedName": "customer_email_enc"},
			{"name": "card_number", "classification": "confidential"},
		]}],
		"slaProperties": [{"property": "latency", "value": 1, "unit": "d"}, {"property": "availability", "value": 99.5}],
	}},
	"context": {"previous": {"version": "1.4.0"}, "changes": {"breaking": 1}},
}

with_product(patch) := object.union(good, {"product": object.union(good.product, patch)})

with_contract(patch) := object.union(good, {"contracts": {"orders": object.union(good.contracts.orders, patch)}})

with_props(props) := with_contract({"schema": [{"name": "orders", "properties": props}]})

pk := {"name": "order_id", "primaryKey": true, "quality": [{"metric": "duplicateValues", "mustBe": 0}]}

test_good_product_passes_every_policy if {
	count(data.mesh.standard.confidential_protected.deny) == 0 with input as good
	count(data.mesh.standard.retention_limit.deny) == 0 with input as good
	count(data.mesh.standard.sla_defined.deny) == 0 with input as good
	count(data.mesh.standard.availability_min.deny) == 0 with input as good
	count(data.mesh.standard.owner_contact.deny) == 0 with input as good
	count(data.mesh.standard.description_present.deny) == 0 with input as good
	count(data.mesh.standard.primary_key_quality.deny) == 0 with input as good
	count(data.mesh.standard.naming.deny) == 0 with input as good
	count(data.mesh.standard.breaking_change_major.deny) == 0 with input as good
	count(data.mesh.standard.pii_tagged.deny) == 0 with input as good
	count(data.mesh.standard.classification_declared.deny) == 0 with input as good
}

test_unprotected_confidential_column if {
	count(data.mesh.standard.confidential_protected.deny) == 1 with input as with_props([pk, {"name": "salary", "classification": "confidential"}])
}

test_retention_over_seven_years if {
	bad := with_product({"customProperties": [{"property": "dataClassification", "value": "internal"}, {"property": "retentionDays", "value": 3000}]})
	count(data.mesh.standard.retention_limit.deny) == 1 with input as bad
}

test_retention_missing if {
	bad := with_product({"customProperties": [{"property": "dataClassification", "value": "internal"}]})
	count(data.mesh.standard.retention_limit.deny) == 1 with input as bad
}

test_sla_missing if {
	count(data.mesh.standard.sla_defined.deny) == 1 with input as with_contract({"slaProperties": []})
}

test_sla_without_availability if {
	count(data.mesh.standard.sla_defined.deny) == 1 with input as with_contract({"slaProperties": [{"property": "latency", "value": 1}]})
}

test_low_availability if {
	count(data.mesh.standard.availability_min.deny) == 1 with input as with_contract({"slaProperties": [{"property": "availability", "value": "90%"}]})
}

test_no_team if {
	bad := object.union(object.remove(good, ["product"]), {"product": object.remove(good.product, ["team"])})
	count(data.mesh.standard.owner_contact.deny) >= 1 with input as bad
}

test_no_contact if {
	bad := with_product({"support": [], "team": {"name": "t", "members": [{"username": "alice", "role": "owner"}]}})
	count(data.mesh.standard.owner_contact.deny) == 1 with input as bad
}

test_short_purpose if {
	count(data.mesh.standard.description_present.deny) == 1 with input as with_product({"description": {"purpose": "orders"}})
}

test_primary_key_without_quality if {
	count(data.mesh.standard.primary_key_quality.deny) == 1 with input as with_props([{"name": "order_id", "primaryKey": true}])
}

test_no_primary_key if {
	count(data.mesh.standard.primary_key_quality.deny) == 1 with input as with_props([{"name": "order_id"}])
}

test_primary_key_checked_at_table_level if {
	bad := with_contract({"schema": [{
		"name": "orders", "properties": [{"name": "order_id", "primaryKey": true}],
		"quality": [{"metric": "duplicateValues", "arguments": {"properties": ["order_id"]}, "mustBe": 0}],
	}]})
	count(data.mesh.standard.primary_key_quality.deny) == 0 with input as bad
}

test_camel_case_column if {
	count(data.mesh.standard.naming.deny) == 1 with input as with_props([pk, {"name": "orderDate"}])
}

test_id_outside_domain if {
	count(data.mesh.standard.naming.deny) >= 1 with input as with_product({"id": "marketing.orders"})
}

test_breaking_change_in_same_major if {
	bad := with_product({"version": "1.5.0"})
	count(data.mesh.standard.breaking_change_major.deny) == 1 with input as bad
}

test_short_deprecation_window if {
	bad := object.union(good, {"context": {"deprecation": {"sunset_in_days": 7}}})
	count(data.mesh.standard.breaking_change_major.deny) == 1 with input as bad
}

test_untagged_email if {
	count(data.mesh.standard.pii_tagged.deny) == 1 with input as with_props([pk, {"name": "email", "classification": "internal"}])
}

test_public_pii if {
	count(data.mesh.standard.pii_tagged.deny) == 1 with input as with_props([pk, {"name": "phone_number", "tags": ["pii"], "classification": "public"}])
}

test_undeclared_classification if {
	bad := with_product({"customProperties": [{"property": "retentionDays", "value": 30}]})
	count(data.mesh.standard.classification_declared.deny) == 1 with input as bad
}

test_column_above_product_classification if {
	bad := with_product({"customProperties": [{"property": "dataClassification", "value": "internal"}, {"property": "retentionDays", "value": 30}]})
	count(data.mesh.standard.classification_declared.deny) >= 1 with input as bad
}

# The rewritten personal-data and naming checks: phrases, word boundaries, every kind of name.
test_personal_phrases_and_words if {
	props := [pk, {"name": "customer_first_name"}, {"name": "E_Mail"}, {"name": "national_id"}, {"name": "billing_street"}]
	denied := data.mesh.standard.pii_tagged.deny with input as with_props(props)

	# Each of the four is untagged and classified public (by default).
	count(denied) == 8
}

test_personal_words_need_boundaries if {
	props := [pk, {"name": "emailed_count"}, {"name": "headphone"}, {"name": "first_order"}, {"name": "namespace"}]
	count(data.mesh.standard.pii_tagged.deny) == 0 with input as with_props(props)
}

test_tagged_public_column_without_a_personal_name if {
	props := [pk, {"name": "segment", "tags": ["pii"]}]
	count(data.mesh.standard.pii_tagged.deny) == 1 with input as with_props(props)
}

test_every_kind_of_bad_name if {
	props := [pk, {"name": "Order-Date"}, {"name": "1st_order"}, {"name": "_hidden"}, {"name": "ok_name_2"}]
	bad := object.union(with_props(props), {"product": object.union(good.product, {
		"id": "sales.Orders",
		"outputPorts": [object.union(good.product.outputPorts[0], {"name": "order-port"})],
	})})
	denied := data.mesh.standard.naming.deny with input as bad

	# Three columns, the product id, the port; the contract id no longer starts with the product id.
	count(denied) == 6
}

# The product reachable only through its owner's username.
only_owner(username) := with_product({"support": [], "team": {"name": "t", "members": [{"username": username, "role": "owner"}]}})

test_owner_email_must_look_like_one if {
	count(data.mesh.standard.owner_contact.deny) == 0 with input as only_owner("alice@example.com")
	count(data.mesh.standard.owner_contact.deny) == 1 with input as only_owner("alice@example")
	count(data.mesh.standard.owner_contact.deny) == 1 with input as only_owner("alice smith@example.com")
	count(data.mesh.standard.owner_contact.deny) == 1 with input as only_owner("@example.com")
	count(data.mesh.standard.owner_contact.deny) == 1 with input as only_owner("alice@@example.com")
}

# Access requests: the request, and what the platform knows about the port.
access_ask(columns, purpose, sensitive) := {
	"request": {"requester": "ana", "product": "ecommerce.orders", "port": "orders", "major": 1, "purpose": purpose, "columns": columns, "days": 30},
	"context": {"domain": "ecommerce", "sensitive": sensitive},
}

test_sensitive_columns_need_a_purpose if {
	count(data.mesh.standard.access_purpose.deny) == 1 with input as access_ask(["email"], "churn", ["email"])
	count(data.mesh.standard.access_purpose.deny) == 1 with input as access_ask(["email"], "   churn model    ", ["email"])
	count(data.mesh.standard.access_purpose.deny) == 0 with input as access_ask(["email"], "Churn model of the loyalty programme.", ["email"])
	count(data.mesh.standard.access_purpose.deny) == 0 with input as access_ask(["amount"], "churn", [])
}

test_asking_for_everything_sensitive_warns if {
	count(data.mesh.standard.access_least_privilege.warn) == 1 with input as access_ask([], "Churn model of the loyalty programme.", ["email"])
	count(data.mesh.standard.access_least_privilege.warn) == 0 with input as access_ask(["amount"], "Churn model of the loyalty programme.", [])
	count(data.mesh.standard.access_least_privilege.warn) == 0 with input as access_ask([], "Revenue per segment.", [])
}

location(url, scheme) := {"location": {"name": "landing", "url": url, "scheme": scheme, "domain": "sales"}, "context": {"storage": "s3://platform/data"}}

test_location_scheme_accepts_object_stores if {
	count(data.mesh.standard.location_scheme.deny) == 0 with input as location("s3://sales-landing/in", "s3")
}

test_location_scheme_accepts_databases if {
	count(data.mesh.standard.location_scheme.deny) == 0 with input as location("postgres://crm.internal:5432/crm", "postgres")
	count(data.mesh.standard.location_scheme.deny) == 0 with input as location("sqlite:///srv/shop.db", "sqlite")
}

test_location_scheme_refuses_http if {
	count(data.mesh.standard.location_scheme.deny) == 1 with input as location("https://example.com/x", "https")
}

test_location_scheme_refuses_climbing if {
	count(data.mesh.standard.location_scheme.deny) == 1 with input as location("file:///srv/landing/../data", "file")
}

test_schedule_too_sparse_for_freshness if {
	nightly := object.union(good, {"schedule": {"cron": "0 6 * * *", "max_interval_seconds": 86400}})
	count(data.mesh.standard.schedule_freshness.deny) == 0 with input as nightly
	hourly_promise := object.union(nightly, {"contracts": {"orders": object.union(good.contracts.orders, {"slaProperties": [{"property": "latency", "value": 2, "unit": "h"}]})}})
	denied := data.mesh.standard.schedule_freshness.deny with input as hourly_promise
	count(denied) == 1
	some v in denied
	contains(v.msg, "leaves up to 1 d between runs")
}

test_no_schedule_no_freshness_finding if {
	count(data.mesh.standard.schedule_freshness.deny) == 0 with input as good
}
