# METADATA
# title: The product declares its classification
# description: customProperty dataClassification is one of public, internal, confidential, restricted, and at least as strict as its most sensitive column.
# custom:
#   id: classification-declared
#   type: classification
#   enforcement: block
package mesh.standard.classification_declared

import rego.v1

rank := {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}

declared := lower(cp.value) if {
	some cp in input.product.customProperties
	cp.property == "dataClassification"
}

deny contains v if {
	not declared
	v := {"msg": "the product does not declare dataClassification", "path": "customProperties.dataClassification"}
}

deny contains v if {
	declared
	not rank[declared]
	v := {"msg": sprintf("dataClassification %s is not one of public, internal, confidential, restricted", [declared]), "path": "customProperties.dataClassification"}
}

deny contains v if {
	# Rule references hoisted out of the loop: each one is a rule call per column otherwise.
	product := declared
	ranks := rank
	limit := ranks[product]
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	column := lower(prop.classification)
	ranks[column] > limit
	v := {"msg": sprintf("column %s.%s of port %s is %s, above the product's %s", [object.name, prop.name, port, column, product]), "path": "customProperties.dataClassification"}
}
