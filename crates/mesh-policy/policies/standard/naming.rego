# METADATA
# title: snake_case names, ids in their domain
# description: The product id is `domain.product`, port and column names are snake_case, contract ids start with the product id.
# custom:
#   id: naming
#   type: interoperability
#   enforcement: block
package mesh.standard.naming

import rego.v1

# Every name that is not snake_case (`^[a-z][a-z0-9_]*$`). One regex call over all the names
# rather than one per name (a regex call is costly in regorus, which gives each call a fresh
# match cache): first whether all are snake_case, the usual case; only if not, which ones.
not_snake := set() if {
	regex.match(`^[a-z][a-z0-9_]*(?:\n[a-z][a-z0-9_]*)*$`, concat("\n", names))
} else := {name | some name in regex.find_n(`(?m)^(?:[^a-z\n][^\n]*|[^\n]*[^a-z0-9_\n][^\n]*)$`, concat("\n", names), -1)} | empty

empty := {""} if "" in names else := set()

names := array.concat(
	array.concat(split(input.product.id, "."), [port.name | some port in ports]),
	[prop.name | some contract in input.contracts; some table in contract.schema; some prop in table.properties],
)

ports := array.concat(object.get(input.product, "outputPorts", []), object.get(input.product, "inputPorts", []))

deny contains v if {
	not startswith(input.product.id, concat("", [input.product.domain, "."]))
	v := {"msg": sprintf("product id %s does not start with its domain %s", [input.product.id, input.product.domain]), "path": "id"}
}

deny contains v if {
	bad := not_snake
	count(bad) > 0
	some part in split(input.product.id, ".")
	bad[part]
	v := {"msg": sprintf("product id %s is not snake_case (%s)", [input.product.id, part]), "path": "id"}
}

deny contains v if {
	bad := not_snake
	count(bad) > 0
	some port in ports
	bad[port.name]
	v := {"msg": sprintf("port name %s is not snake_case", [port.name]), "path": sprintf("ports.%s", [port.name])}
}

deny contains v if {
	bad := not_snake
	count(bad) > 0
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	bad[prop.name]
	v := {"msg": sprintf("column %s.%s of port %s is not snake_case", [object.name, prop.name, port]), "path": sprintf("contracts.%s.schema.%s.properties.%s", [port, object.name, prop.name])}
}

deny contains v if {
	some port, contract in input.contracts
	not startswith(contract.id, concat("", [input.product.id, "."]))
	v := {"msg": sprintf("contract id %s of port %s does not start with the product id %s", [contract.id, port, input.product.id]), "path": sprintf("contracts.%s.id", [port])}
}
