# METADATA
# title: Every output port has an SLA
# description: Each output-port contract declares slaProperties, with at least a latency (freshness) and an availability.
# custom:
#   id: sla-defined
#   type: quality
#   enforcement: block
package mesh.standard.sla_defined

import rego.v1

properties(contract) := {lower(p.property) | some p in object.get(contract, "slaProperties", [])}

deny contains v if {
	some port, contract in input.contracts
	count(object.get(contract, "slaProperties", [])) == 0
	v := {"msg": sprintf("the contract of port %s has no slaProperties", [port]), "path": sprintf("contracts.%s.slaProperties", [port])}
}

deny contains v if {
	some port, contract in input.contracts
	count(object.get(contract, "slaProperties", [])) > 0
	some needed in ["latency", "availability"]
	not needed in properties(contract)
	not alias(needed, properties(contract))
	v := {"msg": sprintf("the SLA of port %s has no %s", [port, needed]), "path": sprintf("contracts.%s.slaProperties", [port])}
}

alias("latency", props) if "freshness" in props
