# METADATA
# title: The schedule keeps the promised freshness
# description: A product scheduled by cron runs often enough for its output ports' latency (freshness) objectives; a cron whose longest gap between two runs exceeds an objective cannot keep it.
# custom:
#   id: schedule-freshness
#   type: quality
#   enforcement: warn
package mesh.standard.schedule_freshness

import rego.v1

# Seconds per SLA unit.
seconds := {
	"s": 1, "sec": 1, "second": 1, "seconds": 1,
	"m": 60, "min": 60, "minute": 60, "minutes": 60,
	"h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
	"d": 86400, "day": 86400, "days": 86400,
	"w": 604800, "week": 604800, "weeks": 604800,
	"y": 31536000, "yr": 31536000, "year": 31536000, "years": 31536000,
}

human(s) := sprintf("%v d", [s / 86400]) if s % 86400 == 0

human(s) := sprintf("%v h", [s / 3600]) if {
	s % 86400 != 0
	s % 3600 == 0
}

human(s) := sprintf("%v min", [s / 60]) if s % 3600 != 0

# `input.schedule` is what the platform derives from the `schedule` custom property: its cron
# and the longest gap between two of its slots (daylight-saving changes included).
deny contains v if {
	gap := input.schedule.max_interval_seconds
	is_number(gap)
	some port, contract in input.contracts
	some p in object.get(contract, "slaProperties", [])
	lower(p.property) in {"latency", "freshness"}
	is_number(p.value)
	objective := p.value * seconds[lower(p.unit)]
	gap > objective
	v := {
		"msg": sprintf("the schedule `%s` leaves up to %s between runs, more than the %v %s freshness port %s promises; run it at least every %v %s", [input.schedule.cron, human(gap), p.value, p.unit, port, p.value, p.unit]),
		"path": "customProperties.schedule",
	}
}
