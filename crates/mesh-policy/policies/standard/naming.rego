# METADATA
# title: snake_case names, ids in their domain
# description: The product id is `domain.product`, port and column names are snake_case, contract ids start with the product id.
# custom:
#   id: naming
#   type: interoperability
#   enforcement: block
package mesh.standard.naming

import rego.v1

snake(name) if regex.match(`^[a-z][a-z0-9_]*$`, name)

deny contains v if {
	not startswith(input.product.id, sprintf("%s.", [input.product.domain]))
	v := {"msg": sprintf("product id %s does not start with its domain %s", [input.product.id, input.product.domain]), "path": "id"}
}

deny contains v if {
	parts := split(input.product.id, ".")
	some part in parts
	not snake(part)
	v := {"msg": sprintf("product id %s is not snake_case (%s)", [input.product.id, part]), "path": "id"}
}

deny contains v if {
	some port in array.concat(object.get(input.product, "outputPorts", []), object.get(input.product, "inputPorts", []))
	not snake(port.name)
	v := {"msg": sprintf("port name %s is not snake_case", [port.name]), "path": sprintf("ports.%s", [port.name])}
}

deny contains v if {
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	not snake(prop.name)
	v := {"msg": sprintf("column %s.%s of port %s is not snake_case", [object.name, prop.name, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s", [port, object.name, prop.name])}
}

deny contains v if {
	some port, contract in input.contracts
	not startswith(contract.id, sprintf("%s.", [input.product.id]))
	v := {"msg": sprintf("contract id %s of port %s does not start with the product id %s", [contract.id, port, input.product.id]), "path": sprintf("contracts.%s.id", [port])}
}
