# METADATA
# title: The product says what it is for
# description: description.purpose is present and says something (at least 20 characters); every output port has a description.
# custom:
#   id: description-present
#   type: interoperability
#   enforcement: warn
package mesh.standard.description_present

import rego.v1

deny contains v if {
	count(trim_space(object.get(object.get(input.product, "description", {}), "purpose", ""))) < 20
	v := {"msg": "description.purpose is missing or too short to tell a consumer what the product is for", "path": "description.purpose"}
}

deny contains v if {
	some port in input.product.outputPorts
	count(trim_space(object.get(port, "description", ""))) == 0
	v := {"msg": sprintf("output port %s has no description", [port.name]), "path": sprintf("outputPorts.%s.description", [port.name])}
}
