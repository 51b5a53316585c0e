"""The safety envelope's decisions, on a real SQLite file and a real PostgreSQL database
(the ``state_backend`` fixture), with a controllable clock."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
from ansible_collections.runbook.remediation.plugins.module_utils import _envelope as envelope


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(state_backend, clock):
    store = envelope.Envelope(clock=clock, **state_backend.envelope_args())
    yield store
    store.close()


def admit(store, run_id, target="web-1/api", scenario="service-down", **kwargs):
    return store.admit(target, scenario, run_id, **kwargs)


def test_first_run_acts_and_holds_a_lease(store):
    decision = admit(store, "run-1")
    assert decision["decision"] == "act" and decision["attempts"] == 1
    assert admit(store, "run-2")["decision"] == "duplicate"  # in progress elsewhere
    assert admit(store, "run-1")["decision"] == "act"  # the holder asking again is not a duplicate


def test_another_scenario_on_a_held_target_is_busy(store):
    admit(store, "run-1")
    assert admit(store, "run-2", scenario="disk-full")["decision"] == "busy"


def test_a_remediated_alert_is_a_duplicate_but_a_failed_one_may_retry(store, clock):
    admit(store, "run-1", alert_key="fp@t0")
    store.release("web-1/api", "service-down", "run-1", "failed")
    clock.now += 10
    assert admit(store, "run-2", alert_key="fp@t0")["decision"] == "act"
    store.release("web-1/api", "service-down", "run-2", "remediated")
    clock.now += 10
    repeat = admit(store, "run-3", alert_key="fp@t0")
    assert repeat["decision"] == "duplicate" and "run-2" in repeat["reason"]
    # The same alert firing again later (new start time) is a new incident.
    assert admit(store, "run-4", alert_key="fp@t1")["decision"] == "act"


def test_budget_then_hold_then_escalation_once(store, clock):
    for run in ("a", "b"):
        assert admit(store, run, max_attempts=2, window=600, cooldown=900)["decision"] == "act"
        store.release("web-1/api", "service-down", run, "failed", breaker_threshold=10)
        clock.now += 30
    spent = admit(store, "c", max_attempts=2, window=600, cooldown=900)
    assert spent["decision"] == "escalate" and "2 attempts" in spent["reason"]
    clock.now += 60
    held = admit(store, "d", max_attempts=2, window=600, cooldown=900)
    assert held["decision"] == "cooldown" and "on hold" in held["reason"]
    clock.now += 900  # the hold is over and the old attempts left the window
    assert admit(store, "e", max_attempts=2, window=600, cooldown=900)["decision"] == "act"


def test_healthy_runs_cost_nothing(store, clock):
    for run in ("a", "b", "c", "d"):
        assert admit(store, run, max_attempts=2)["decision"] == "act"
        store.release("web-1/api", "service-down", run, "healthy")
        clock.now += 1


def test_min_interval_between_attempts(store, clock):
    admit(store, "a", min_interval=120)
    store.release("web-1/api", "service-down", "a", "remediated")
    clock.now += 60
    assert admit(store, "b", min_interval=120)["decision"] == "cooldown"
    clock.now += 61
    assert admit(store, "c", min_interval=120)["decision"] == "act"


def test_failures_on_several_targets_open_the_fleet_breaker_until_reset(store, clock):
    for i, target in enumerate(["web-1/api", "web-2/api", "web-3/api"]):
        admit(store, f"r{i}", target=target)
        state = store.release(target, "service-down", f"r{i}", "failed", breaker_threshold=3,
                              fleet_breaker_threshold=3)
        clock.now += 1
    assert state["fleet_breaker_open"] is True and state["failing_targets"] == 3
    assert state["target_breaker_open"] is False and state["breaker_failures"] == 1
    blocked = admit(store, "r9", target="web-9/api")
    assert blocked["decision"] == "breaker" and "runbook breaker reset service-down" in blocked["reason"]
    assert admit(store, "other", scenario="disk-full", target="web-9/api")["decision"] == "act"
    assert store.reset(scenario="service-down")["breakers_closed"] == 1
    assert admit(store, "r10", target="web-8/api")["decision"] == "act"


def test_failures_on_one_target_open_only_its_breaker(store, clock):
    # Three forged alerts against one host must not disable the scenario for the fleet.
    for i in range(3):
        admit(store, f"r{i}", target="web-1/api")
        state = store.release("web-1/api", "service-down", f"r{i}", "failed", breaker_threshold=3)
        clock.now += 1
    assert state["target_breaker_open"] is True and state["fleet_breaker_open"] is False
    blocked = admit(store, "r3", target="web-1/api")
    assert blocked["decision"] == "breaker"
    assert "--target web-1/api" in blocked["reason"]
    assert admit(store, "r4", target="web-2/api")["decision"] == "act"


def test_reset_with_a_target_touches_only_that_target(store, clock):
    for target in ("web-1/api", "web-2/api"):
        for i in range(2):
            admit(store, f"{target}-{i}", target=target)
            store.release(target, "service-down", f"{target}-{i}", "failed", breaker_threshold=2,
                          fleet_breaker_threshold=5)
            clock.now += 1
    assert admit(store, "x", target="web-1/api")["decision"] == "breaker"
    assert store.reset(scenario="service-down", target="web-2/api") == {"breakers_closed": 1, "holds_lifted": 0}
    assert admit(store, "y", target="web-1/api")["decision"] == "breaker"
    assert admit(store, "z", target="web-2/api")["decision"] == "act"
    assert store.known_target("web-1/api") and not store.known_target("web-7/api")


def test_a_version_1_file_is_migrated_and_keeps_its_breaker(tmp_path):
    path = tmp_path / "envelope.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE breakers (scenario TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0, opened_at REAL,
                                   last_failure_at REAL, reason TEXT);
            INSERT INTO breakers VALUES ('service-down', 3, 5.0, 5.0, '3 failed verifications in a row');
        """)
    store = envelope.Envelope(str(path))
    assert admit(store, "a")["decision"] == "breaker"
    assert [b["target"] for b in store.status()["breakers"]] == [envelope.FLEET]
    store.close()


def test_the_state_file_is_private(tmp_path):
    path = tmp_path / "state" / "envelope.db"
    envelope.Envelope(str(path)).close()
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700


def test_a_lease_can_be_renewed(store, clock):
    admit(store, "a", lease_ttl=10)
    clock.now += 8
    assert store.renew("web-1/api", "service-down", "a", lease_ttl=10) is True
    clock.now += 8
    assert admit(store, "b")["decision"] == "duplicate"
    assert store.renew("web-1/api", "service-down", "nobody", lease_ttl=10) is False


def test_a_success_closes_the_failure_streak(store):
    admit(store, "a")
    store.release("web-1/api", "service-down", "a", "failed", breaker_threshold=2)
    admit(store, "b", target="web-2/api")
    assert store.release("web-2/api", "service-down", "b", "remediated", breaker_threshold=2)["breaker_failures"] == 0


@pytest.mark.parametrize(("size", "share", "allowed"),
                         [(1, 0.5, 1), (4, 0.5, 2), (5, 0.5, 2), (10, 0.25, 2), (3, 0.1, 1), (4, 1.0, 4)])
def test_allowed_in_group(size, share, allowed):
    assert envelope.allowed_in_group(size, share) == allowed


def test_blast_radius_limits_a_group(store, clock):
    kwargs = {"group": "api", "group_size": 4, "max_share": 0.5}
    assert admit(store, "a", target="web-1/api", **kwargs)["decision"] == "act"
    assert admit(store, "b", target="web-2/api", **kwargs)["decision"] == "act"
    full = admit(store, "c", target="web-3/api", **kwargs)
    assert full["decision"] == "busy" and "2 of 2 allowed" in full["reason"]
    store.release("web-1/api", "service-down", "a", "remediated")
    assert admit(store, "c", target="web-3/api", **kwargs)["decision"] == "act"


def test_an_abandoned_lease_expires(store, clock):
    admit(store, "dead-run", lease_ttl=60)
    clock.now += 61
    assert admit(store, "next")["decision"] == "act"


def test_dry_run_writes_nothing(store, tmp_path):
    assert admit(store, "a", dry_run=True)["decision"] == "act"
    assert store.attempts() == [] and store.status()["decisions"] == []


def test_state_survives_a_new_process(state_backend, clock):
    where = state_backend.envelope_args()
    first = envelope.Envelope(clock=clock, **where)
    admit(first, "a", max_attempts=1)
    first.release("web-1/api", "service-down", "a", "failed")
    first.close()
    again = envelope.Envelope(clock=clock, **where)
    assert admit(again, "b", max_attempts=1)["decision"] == "escalate"
    again.close()


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    from tests.postgres import free_port

    dsn = f"postgresql://runbook:Unreachable-Pw-4711@127.0.0.1:{free_port()}/runbook"
    with pytest.raises(envelope.EnvelopeError) as caught:
        envelope.Envelope(dsn=dsn)
    message = str(caught.value)
    assert "\n" not in message and "Unreachable-Pw-4711" not in message
    assert message.startswith("cannot use the shared state database postgresql://127.0.0.1:")


def test_a_newer_schema_in_postgres_is_refused(postgres):
    from tests.conftest import new_database

    dsn = new_database(postgres)
    envelope.Envelope(dsn=dsn).close()
    postgres.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", dbname=dsn.rsplit("/", 1)[1])
    with pytest.raises(envelope.EnvelopeError, match="schema version 99"):
        envelope.Envelope(dsn=dsn)


def test_unusable_path_is_an_envelope_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(envelope.EnvelopeError, match="cannot use the safety envelope state"):
        envelope.Envelope(str(blocker / "envelope.db"))


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "envelope.db"
    envelope.Envelope(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(envelope.EnvelopeError, match="schema version 99"):
        envelope.Envelope(str(path))


def _race(where: dict, run_id: str, barrier, results) -> None:
    store = envelope.Envelope(**where)
    barrier.wait()
    results.put(store.admit("web-1/api", "service-down", run_id, alert_key="fp@t0")["decision"])
    store.close()


def test_ten_simultaneous_duplicates_admit_exactly_one(state_backend):
    path = state_backend.envelope_args()
    envelope.Envelope(**path).close()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(10), context.Queue()
    workers = [context.Process(target=_race, args=(path, f"run-{i}", barrier, results)) for i in range(10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    decisions = sorted(results.get(timeout=5) for worker in workers)
    assert decisions == ["act"] + ["duplicate"] * 9


def test_default_path_follows_the_state_directory():
    assert envelope.default_path({"RUNBOOK_ENVELOPE_DB": "/x/e.db"}) == "/x/e.db"
    assert envelope.default_path({"RUNBOOK_STATE_DIR": "/s"}) == "/s/envelope.db"
    assert envelope.default_path({"XDG_STATE_HOME": "/xdg"}) == "/xdg/runbook/envelope.db"
