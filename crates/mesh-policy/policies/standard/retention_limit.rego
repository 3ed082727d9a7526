# METADATA
# title: Retention at most 7 years
# description: A product keeps data at most 2555 days (customProperty retentionDays), and declares it.
# custom:
#   id: retention-limit
#   type: retention
#   enforcement: warn
package mesh.standard.retention_limit

import rego.v1

retention := cp.value if {
	some cp in input.product.customProperties
	cp.property == "retentionDays"
}

deny contains v if {
	not retention
	v := {"msg": "the product does not declare retentionDays", "path": "customProperties"}
}

deny contains v if {
	not is_number(retention)
	v := {"msg": sprintf("retentionDays must be a number of days, not %v", [retention]), "path": "customProperties.retentionDays"}
}

deny contains v if {
	is_number(retention)
	retention > 2555
	v := {"msg": sprintf("retentionDays is %v; at most 2555 days (7 years) are allowed", [retention]), "path": "customProperties.retentionDays"}
}
