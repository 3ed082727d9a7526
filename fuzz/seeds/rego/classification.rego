# METADATA
# title: Personal data is classified
# description: A column tagged pii needs a classification of confidential or restricted.
# custom:
#   id: fuzz-seed-classification
#   enforcement: block
#   on: [publish, ci]
package mesh.fuzzseed.classification

import rego.v1

deny contains msg if {
	some schema in input.contracts[_].schema
	some column in schema.properties
	"pii" in object.get(column, "tags", [])
	not column.classification in {"confidential", "restricted"}
	msg := sprintf("column %s.%s is tagged pii but classified %v", [schema.name, column.name, object.get(column, "classification", "nothing")])
}
