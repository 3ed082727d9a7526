# METADATA
# title: Availability at least 95%
# description: An availability SLA below 95% is not a product others can build on.
# custom:
#   id: availability-min
#   type: quality
#   enforcement: warn
package mesh.standard.availability_min

import rego.v1

percent(value) := value if is_number(value)

percent(value) := to_number(trim_suffix(trim_space(value), "%")) if is_string(value)

deny contains v if {
	some port, contract in input.contracts
	some sla in object.get(contract, "slaProperties", [])
	lower(sla.property) == "availability"
	percent(sla.value) < 95
	v := {"msg": sprintf("port %s promises %v%% availability; at least 95%% is required", [port, percent(sla.value)]), "path": sprintf("contracts.%s.slaProperties.availability", [port])}
}
