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

masked(port) := {c | some p in input.product.outputPorts; p.name == port; some cp in p.customProperties; cp.property == "masked"; some c in cp.value}

deny contains v if {
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	lower(object.get(prop, "classification", "")) in sensitive
	not prop.encryptedName
	not prop.name in masked(port)
	v := {
		"msg": sprintf("column %s.%s of port %s is %s but neither encrypted (encryptedName) nor masked at the port", [object.name, prop.name, port, prop.classification]),
		"path": sprintf("contracts.%s.schema.%s.properties.%s", [port, object.name, prop.name]),
	}
}
