"""The outcomes of a scenario run: one list for the results, the incidents and the output.

A host's outcome is what its playbook reported (``runbook_result.outcome``), or
``unreachable``, which the CLI makes for a host it could not reach. A run that ended
before its hosts did is recorded in the timeline with one of the run endings below.
"""

from __future__ import annotations

HEALTHY = "healthy"  # nothing wrong: nothing was changed
REMEDIATED = "remediated"  # acted, and verification passed
PLANNED = "planned"  # check mode: what it would do
ESCALATE = "escalate"  # a budget, cooldown or breaker said no: a human must decide
FAILED = "failed"  # remediation or verification failed
SKIPPED = "skipped"  # the safety envelope found another run on it (a duplicate alert)
UNREACHABLE = "unreachable"  # made by the CLI for a host that could not be reached

# What a playbook may report (anything else is turned into ``failed``).
REPORTED = (HEALTHY, REMEDIATED, FAILED, ESCALATE, PLANNED, SKIPPED)
ALL = (*REPORTED, UNREACHABLE)
# Outcomes where nothing needed doing: a run with only these opens no incident.
NOTHING_DONE = frozenset({HEALTHY, SKIPPED})
# Outcomes that are the host's failure (the failing task is shown).
BROKEN = frozenset({FAILED, UNREACHABLE})

# How a run that never got a result is recorded in the timeline.
INTERRUPTED = "interrupted"
TIMED_OUT = "timeout"
NO_HOSTS = "no hosts"

# Colours (rich styles) in the per-host output; an unknown outcome is red.
COLOURS = {
    HEALTHY: "green",
    REMEDIATED: "green",
    PLANNED: "cyan",
    ESCALATE: "yellow",
    FAILED: "red",
    UNREACHABLE: "red",
}


def colour(outcome: str) -> str:
    return COLOURS.get(outcome, "red")
