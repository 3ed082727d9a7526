# METADATA
# title: Every output port has an SLA
# description: Each output-port contract declares slaProperties, with at least a latency (freshness) and an availability.
# custom:
#   id: sla-defined
#   type: quality
#   enforcement: block
package mesh.standard.sla_defined

import rego.v1

# The SLA properties that count, per port: [port, latency | availability]. A freshness promise
# is a latency promise (ODCS v2 called it freshness).
promised contains [port, kind] if {
	some port, contract in input.contracts
	some p in object.get(contract, "slaProperties", [])
	kind := {"latency": "latency", "freshness": "latency", "availability": "availability"}[lower(p.property)]
}

deny contains v if {
	some port, contract in input.contracts
	count(object.get(contract, "slaProperties", [])) == 0
	v := {"msg": sprintf("the contract of port %s has no slaProperties", [port]), "path": sprintf("contracts.%s.slaProperties", [port])}
}

deny contains v if {
	present := promised
	some port, contract in input.contracts
	count(object.get(contract, "slaProperties", [])) > 0
	some needed in ["latency", "availability"]
	not present[[port, needed]]
	v := {"msg": sprintf("the SLA of port %s has no %s", [port, needed]), "path": sprintf("contracts.%s.slaProperties", [port])}
}
