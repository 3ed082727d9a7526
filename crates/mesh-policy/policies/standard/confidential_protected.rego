# METADATA
# title: Confidential data is protected
# description: >-
#   Columns classified confidential or restricted declare an encrypted form (encryptedName) or are
#   masked at the output port (the port's customProperty `masked` lists them).
# custom:
#   id: confidential-protected
#   type: classification
#   enforcement: block
package mesh.standard.confidential_protected

import rego.v1

sensitive := {"confidential", "restricted", "secret"}

# [port, column] of every column an output port masks.
masked contains [p.name, c] if {
	some p in input.product.outputPorts
	some cp in p.customProperties
	cp.property == "masked"
	some c in cp.value
}

deny contains v if {
	# Rule references hoisted out of the loop: each one is a rule call per column otherwise.
	levels := sensitive
	hidden := masked
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	levels[lower(prop.classification)]
	not prop.encryptedName
	not hidden[[port, prop.name]]
	v := {
		"msg": sprintf("column %s.%s of port %s is %s but neither encrypted (encryptedName) nor masked at the port", [object.name, prop.name, port, prop.classification]),
		"path": sprintf("contracts.%s.schema.%s.properties.%s", [port, object.name, prop.name]),
	}
}
