# METADATA
# title: External locations are object stores, absolute folders or databases
# description: >-
#   A location a domain's sources may read is an object store (s3, gs, az, abfss), an
#   absolute folder (file) or a database (postgres, postgresql, mysql, mariadb, sqlite), with
#   no `..` in its path: what a storage grant or a database role can be scoped to.
# custom:
#   id: location-scheme
#   type: access_control
#   enforcement: block
#   on: location
package mesh.standard.location_scheme

import rego.v1

schemes := {"s3", "gs", "az", "abfss", "file", "postgres", "postgresql", "mysql", "mariadb", "sqlite"}

deny contains {"msg": msg, "path": "location.url"} if {
	not input.location.scheme in schemes
	msg := sprintf(
		"location %s: `%s` is not an object store, a folder or a database (one of %s)",
		[input.location.name, input.location.scheme, concat(", ", sort(schemes))],
	)
}

deny contains {"msg": msg, "path": "location.url"} if {
	some part in split(input.location.url, "/")
	part == ".."
	msg := sprintf("location %s: `..` in %s", [input.location.name, input.location.url])
}
