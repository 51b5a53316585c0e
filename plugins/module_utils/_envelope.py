# -*- coding: utf-8 -*-
# Copyright: runbook.remediation contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safety envelope's durable state: who may remediate what, now.

One SQLite file shared by every entrance (the runbook CLI, ansible-playbook, AWX,
ansible-rulebook): a remediation asks :meth:`Envelope.admit` before it acts and calls
:meth:`Envelope.release` when it is done. Every decision is one ``BEGIN IMMEDIATE``
transaction, so concurrent runs (ten duplicate alerts at once) see each other's leases.
Stdlib only: the runbook CLI loads this file by path, outside Ansible.

With ``dsn`` (``$RUNBOOK_STATE_DSN``) the same tables live in PostgreSQL, shared by every
controller; each transaction then holds the envelope's advisory lock (``_statedb.py``),
so decisions are serialised across the fleet exactly as ``BEGIN IMMEDIATE`` does locally.

Tables
  attempts   one row per admitted remediation: target, scenario, group, run id, alert
             key, started/ended, outcome, lease expiry (an unfinished row whose lease has
             not expired is "in progress": it holds the target and a slot of its group)
  holds      a target+scenario that used its attempt budget: no action until ``until``
  breakers   per scenario and target: consecutive failed verifications of that target;
             open (``opened_at``) once they reach ``breaker_threshold``, until a human
             resets it. The row with target ``*`` is the scenario's fleet breaker: it
             opens when ``fleet_breaker_threshold`` targets are failing at once (a bad
             remediation everywhere), so failures on one host (three forged alerts, one
             broken box) never disable a scenario for the whole fleet.
  decisions  every admission decision, for ``runbook breaker status`` and the timeline

Decisions
  act         admitted: a lease is held until release (or until it expires)
  duplicate   the same alert (fingerprint + start) is being or was handled, or another
              run holds the target now
  cooldown    the target acted less than ``min_interval`` ago, or is held after its budget
  escalate    this call exhausted the budget: a hold starts; tell a human
  breaker     the target's or the scenario's (fleet) circuit breaker is open
  busy        the group's blast-radius slots (or the target, for another scenario) stayed
              taken for ``wait`` seconds
"""

from __future__ import annotations

import math
import os
import sqlite3
import time

try:  # imported as a collection module (remediation_guard, the action plugins)
    from ansible_collections.runbook.remediation.plugins.module_utils import _statedb
except ImportError:  # loaded by path (the runbook CLI): the file beside this one
    import importlib.util

    _SPEC = importlib.util.spec_from_file_location(
        __name__ + '_statedb', os.path.join(os.path.dirname(os.path.abspath(__file__)), '_statedb.py'))
    _statedb = importlib.util.module_from_spec(_SPEC)
    _SPEC.loader.exec_module(_statedb)

SCHEMA_VERSION = 2
FLEET = "*"  # the target of a scenario's fleet-wide breaker

# Outcomes that count against the attempt budget (the run touched, or tried to touch,
# the target). A run that found the target healthy did nothing and costs nothing.
COUNTED_OUTCOMES = ("remediated", "failed", "escalate")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    scenario TEXT NOT NULL,
    group_name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    alert_key TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,
    lease_expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_target ON attempts (target, scenario, started_at);
CREATE INDEX IF NOT EXISTS attempts_group ON attempts (group_name, ended_at);
CREATE TABLE IF NOT EXISTS holds (
    target TEXT NOT NULL,
    scenario TEXT NOT NULL,
    until REAL NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (target, scenario)
);
CREATE TABLE IF NOT EXISTS breakers (
    scenario TEXT NOT NULL,
    target TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    opened_at REAL,
    last_failure_at REAL,
    reason TEXT,
    PRIMARY KEY (scenario, target)
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    target TEXT NOT NULL,
    scenario TEXT NOT NULL,
    run_id TEXT,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


# The key of each table that INSERT OR REPLACE writes (PostgreSQL's ON CONFLICT target).
_UPSERT_KEYS = {"meta": ("key",), "holds": ("target", "scenario"), "breakers": ("scenario", "target")}


class EnvelopeError(Exception):
    """The state file cannot be used (unwritable, corrupt, newer schema)."""


def default_path(environ=None):
    """``$RUNBOOK_ENVELOPE_DB``, else ``envelope.db`` in the runbook state directory
    (``$RUNBOOK_STATE_DIR``, ``$XDG_STATE_HOME/runbook``, ``~/.local/state/runbook``)."""
    env = os.environ if environ is None else environ
    if env.get("RUNBOOK_ENVELOPE_DB"):
        return os.path.expanduser(env["RUNBOOK_ENVELOPE_DB"])
    if env.get("RUNBOOK_STATE_DIR"):
        base = os.path.expanduser(env["RUNBOOK_STATE_DIR"])
    else:
        base = os.path.join(env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "runbook")
    return os.path.join(base, "envelope.db")


def allowed_in_group(group_size, max_share):
    """How many targets of a group may be remediated at once: the share, rounded down,
    never below one (a group of one can still be healed)."""
    if group_size <= 1:
        return 1
    return max(1, math.floor(group_size * max_share + 1e-9))


class Envelope(object):
    def __init__(self, path=None, clock=time.time, dsn=None):
        """The envelope in the SQLite file ``path`` (default :func:`default_path`), or in the
        PostgreSQL database ``dsn`` (a libpq DSN or URL) when one is given."""
        self.clock = clock
        if dsn:
            try:
                self.conn = _statedb.connect_postgres(dsn, _statedb.LOCK_ENVELOPE, _UPSERT_KEYS)
            except _statedb.StateDBError as exc:
                raise EnvelopeError(str(exc)) from None
            self.path = self.conn.where
            try:
                with self._transaction():
                    self._migrate()
            except self.conn.errors as exc:
                self.conn.close()
                raise EnvelopeError("cannot use the safety envelope state %s: %s" % (
                    self.path, _statedb.first_line(exc))) from None
            return
        self.path = path or default_path()
        path = self.path
        directory = os.path.dirname(os.path.abspath(path))
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            # Only its owner reads the state (targets, run ids, alert keys); SQLite gives
            # the -wal and -shm files the database file's mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self.conn = _statedb.connect_sqlite(path)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA busy_timeout=30000")
            with self._transaction():
                self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise EnvelopeError("cannot use the safety envelope state %s: %s" % (path, exc)) from exc

    def close(self):
        self.conn.close()

    def _migrate(self):
        """Create the schema, or bring an older one up to SCHEMA_VERSION."""
        db = self.conn
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise EnvelopeError("%s has schema version %s; this code knows %d" % (self.path, version, SCHEMA_VERSION))
        if version == 1:
            # v1 kept one breaker per scenario: it becomes the scenario's fleet breaker.
            db.execute("ALTER TABLE breakers RENAME TO breakers_v1")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.schema(statement)
        if version == 1:
            db.execute("INSERT INTO breakers (scenario, target, failures, opened_at, last_failure_at, reason) "
                       "SELECT scenario, ?, failures, opened_at, last_failure_at, reason FROM breakers_v1", (FLEET,))
            db.execute("DROP TABLE breakers_v1")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # --- one transaction ---------------------------------------------------------
    def _transaction(self):
        return self.conn.transaction()

    def _log(self, now, target, scenario, run_id, decision, reason):
        self.conn.execute(
            "INSERT INTO decisions (at, target, scenario, run_id, decision, reason) VALUES (?, ?, ?, ?, ?, ?)",
            (now, target, scenario, run_id, decision, reason))

    def admit(self, target, scenario, run_id, group=None, group_size=1, max_share=1.0, alert_key=None,
              max_attempts=3, window=3600.0, min_interval=0.0, cooldown=3600.0, breaker_threshold=3,
              lease_ttl=900.0, wait=0.0, poll=0.25, dry_run=False, fleet_breaker_threshold=3):
        """Decide whether ``run_id`` may remediate ``scenario`` on ``target`` now.

        Returns a dict: decision, reason, and the counts the decision used. With
        ``wait`` > 0 a full group is waited on (polling) instead of answered ``busy``.
        ``dry_run`` (check mode) decides without writing anything.
        """
        group = group or target
        deadline = self.clock() + max(0.0, wait)
        while True:
            with self._transaction():
                result = self._decide(target, scenario, run_id, group, group_size, max_share, alert_key,
                                      max_attempts, window, min_interval, cooldown, breaker_threshold,
                                      lease_ttl, dry_run)
                if result["decision"] != "busy" or self.clock() >= deadline:
                    if not dry_run:
                        self._log(result["now"], target, scenario, run_id, result["decision"], result["reason"])
                    result.pop("now")
                    return result
            time.sleep(poll)

    def _decide(self, target, scenario, run_id, group, group_size, max_share, alert_key, max_attempts, window,
                min_interval, cooldown, breaker_threshold, lease_ttl, dry_run):
        now = self.clock()
        db = self.conn

        def answer(decision, reason, **extra):
            extra.update({"decision": decision, "reason": reason, "now": now})
            return extra

        for row in db.execute("SELECT target, failures, reason FROM breakers WHERE scenario = ? AND target IN (?, ?) "
                              "AND opened_at IS NOT NULL ORDER BY target = ? DESC", (scenario, FLEET, target, FLEET)):
            if row[0] == FLEET:
                return answer("breaker", "the %s circuit breaker is open for the whole fleet: %s "
                                         "(runbook breaker reset %s)" % (scenario, row[2], scenario))
            return answer("breaker", "the %s circuit breaker of %s is open after %d failed verifications "
                                     "(runbook breaker reset %s --target %s)" % (scenario, target, row[1], scenario,
                                                                                 target))

        mine = db.execute("SELECT id FROM attempts WHERE run_id = ? AND target = ? AND scenario = ? "
                          "AND ended_at IS NULL", (run_id, target, scenario)).fetchone()
        if mine:
            return answer("act", "this run already holds %s" % target, attempt_id=mine[0])

        holder = db.execute("SELECT run_id, scenario FROM attempts WHERE target = ? AND ended_at IS NULL "
                            "AND lease_expires > ? ORDER BY started_at LIMIT 1", (target, now)).fetchone()
        if holder and holder[1] == scenario:
            return answer("duplicate", "run %s is remediating %s now" % (holder[0], target))
        if holder:
            return answer("busy", "run %s is remediating %s now (%s)" % (holder[0], target, holder[1]))

        if alert_key:
            seen = db.execute("SELECT run_id, outcome FROM attempts WHERE target = ? AND scenario = ? "
                              "AND alert_key = ? AND outcome IN ('remediated', 'healthy') ORDER BY started_at DESC "
                              "LIMIT 1", (target, scenario, alert_key)).fetchone()
            if seen:
                return answer("duplicate", "this alert was already handled by run %s (%s)" % (seen[0], seen[1]))

        hold = db.execute("SELECT until, reason FROM holds WHERE target = ? AND scenario = ? AND until > ?",
                          (target, scenario, now)).fetchone()
        if hold:
            return answer("cooldown", "%s is on hold for %s until %s: %s" % (
                target, scenario, _iso(hold[0]), hold[1]), hold_until=hold[0])

        recent = db.execute(
            "SELECT count(*), max(started_at) FROM attempts WHERE target = ? AND scenario = ? AND started_at > ? "
            "AND (outcome IS NULL OR outcome IN (?, ?, ?))",
            (target, scenario, now - window, *COUNTED_OUTCOMES)).fetchone()
        attempts, last = recent[0], recent[1]
        if attempts >= max_attempts:
            reason = "%d attempts on %s within %ds did not hold: escalating, no action until %s" % (
                attempts, target, int(window), _iso(now + cooldown))
            if not dry_run:
                db.execute("INSERT OR REPLACE INTO holds (target, scenario, until, reason, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", (target, scenario, now + cooldown, reason, now))
            return answer("escalate", reason, attempts=attempts, hold_until=now + cooldown)
        if last is not None and min_interval > 0 and now - last < min_interval:
            return answer("cooldown", "%s was remediated %.0fs ago (minimum interval %ds)" % (
                target, now - last, int(min_interval)), attempts=attempts)

        allowed = allowed_in_group(group_size, max_share)
        busy = db.execute("SELECT count(DISTINCT target) FROM attempts WHERE group_name = ? AND ended_at IS NULL "
                          "AND lease_expires > ? AND target != ?", (group, now, target)).fetchone()[0]
        if busy >= allowed:
            return answer("busy", "%d of %d allowed targets of group %s are being remediated (blast radius %g%% "
                                  "of %d)" % (busy, allowed, group, max_share * 100, group_size),
                          attempts=attempts, group_busy=busy, group_allowed=allowed)

        attempt_id = None
        if not dry_run:
            attempt_id = db.insert(
                "INSERT INTO attempts (target, scenario, group_name, run_id, alert_key, started_at, lease_expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (target, scenario, group, run_id, alert_key, now, now + lease_ttl))
        return answer("act", "attempt %d of %d on %s within %ds" % (attempts + 1, max_attempts, target, int(window)),
                      attempts=attempts + 1, group_busy=busy, group_allowed=allowed, attempt_id=attempt_id)

    def release(self, target, scenario, run_id, outcome, breaker_threshold=3, fleet_breaker_threshold=3):
        """End this run's attempt with its outcome; count a failed verification against the
        target's breaker (a remediated one closes its streak) and the fleet's."""
        with self._transaction():
            now = self.clock()
            updated = self.conn.execute(
                "UPDATE attempts SET ended_at = ?, outcome = ? WHERE run_id = ? AND target = ? AND scenario = ? "
                "AND ended_at IS NULL", (now, outcome, run_id, target, scenario)).rowcount
            state = self._breaker_update(scenario, target, outcome, breaker_threshold, fleet_breaker_threshold, now)
        state["released"] = updated > 0
        return state

    def renew(self, target, scenario, run_id, lease_ttl):
        """Extend this run's lease (a long remediation between phases); False when it holds none."""
        with self._transaction():
            return self.conn.execute(
                "UPDATE attempts SET lease_expires = ? WHERE run_id = ? AND target = ? AND scenario = ? "
                "AND ended_at IS NULL", (self.clock() + lease_ttl, run_id, target, scenario)).rowcount > 0

    def _breaker_update(self, scenario, target, outcome, threshold, fleet_threshold, now):
        db = self.conn
        row = db.execute("SELECT failures, opened_at FROM breakers WHERE scenario = ? AND target = ?",
                         (scenario, target)).fetchone()
        failures, opened_at = (row[0], row[1]) if row else (0, None)
        if outcome == "failed":
            failures += 1
            if opened_at is None and failures >= threshold:
                opened_at = now
            db.execute("INSERT OR REPLACE INTO breakers (scenario, target, failures, opened_at, last_failure_at, "
                       "reason) VALUES (?, ?, ?, ?, ?, ?)",
                       (scenario, target, failures, opened_at, now, "%d failed verifications in a row" % failures))
        elif outcome == "remediated" and opened_at is None and failures:
            failures = 0
            db.execute("UPDATE breakers SET failures = 0 WHERE scenario = ? AND target = ?", (scenario, target))
        failing = db.execute("SELECT count(*) FROM breakers WHERE scenario = ? AND target != ? AND failures > 0",
                             (scenario, FLEET)).fetchone()[0]
        fleet = db.execute("SELECT opened_at FROM breakers WHERE scenario = ? AND target = ?",
                           (scenario, FLEET)).fetchone()
        fleet_open = bool(fleet and fleet[0] is not None)
        if outcome == "failed" and not fleet_open and failing >= max(1, fleet_threshold):
            fleet_open = True
            db.execute("INSERT OR REPLACE INTO breakers (scenario, target, failures, opened_at, last_failure_at, "
                       "reason) VALUES (?, ?, ?, ?, ?, ?)",
                       (scenario, FLEET, failing, now, now, "%d targets failed their verification" % failing))
        return {"breaker_failures": failures, "breaker_open": opened_at is not None or fleet_open,
                "target_breaker_open": opened_at is not None, "fleet_breaker_open": fleet_open,
                "failing_targets": failing}

    def known_target(self, target):
        """Whether the envelope has ever seen ``target`` (attempts, holds, breakers)."""
        for table in ("attempts", "holds", "breakers"):
            if self.conn.execute("SELECT 1 FROM %s WHERE target = ? LIMIT 1" % table,  # noqa: S608 - fixed names
                                 (target,)).fetchone():
                return True
        return False

    def reset(self, scenario=None, target=None):
        """A human's reset: close breakers and lift holds of one scenario, one target, both,
        or everything. With a target only that target's breakers and holds are touched;
        the fleet breaker closes only when no target is given."""
        with self._transaction():
            where, args = [], []
            if scenario:
                where.append("scenario = ?")
                args.append(scenario)
            if target:
                where.append("target = ?")
                args.append(target)
            clause = (" WHERE " + " AND ".join(where)) if where else ""
            opened = " WHERE " + " AND ".join([*where, "opened_at IS NOT NULL"])
            breakers = self.conn.execute("DELETE FROM breakers" + opened, args).rowcount  # noqa: S608 - fixed columns
            self.conn.execute("DELETE FROM breakers" + clause, args)  # noqa: S608 - the closed streaks too
            holds = self.conn.execute("DELETE FROM holds" + clause, args).rowcount  # noqa: S608 - fixed columns
        return {"breakers_closed": breakers, "holds_lifted": holds}

    def status(self, recent=20):
        now = self.clock()
        db = self.conn
        breakers = [
            {"scenario": r[0], "target": r[1], "fleet": r[1] == FLEET, "failures": r[2], "open": r[3] is not None,
             "opened_at": _iso(r[3]), "last_failure_at": _iso(r[4]), "reason": r[5]}
            for r in db.execute("SELECT scenario, target, failures, opened_at, last_failure_at, reason FROM breakers "
                                "ORDER BY scenario, target != ?, target", (FLEET,))]
        holds = [
            {"target": r[0], "scenario": r[1], "until": _iso(r[2]), "reason": r[3]}
            for r in db.execute("SELECT target, scenario, until, reason FROM holds WHERE until > ? ORDER BY until",
                                (now,))]
        active = [
            {"target": r[0], "scenario": r[1], "group": r[2], "run_id": r[3], "started_at": _iso(r[4])}
            for r in db.execute("SELECT target, scenario, group_name, run_id, started_at FROM attempts "
                                "WHERE ended_at IS NULL AND lease_expires > ? ORDER BY started_at", (now,))]
        decisions = [
            {"at": _iso(r[0]), "target": r[1], "scenario": r[2], "run_id": r[3], "decision": r[4], "reason": r[5]}
            for r in db.execute("SELECT at, target, scenario, run_id, decision, reason FROM decisions "
                                "ORDER BY id DESC LIMIT ?", (recent,))]
        return {"path": self.path, "breakers": breakers, "holds": holds, "active": active, "decisions": decisions}

    def attempts(self, target=None, scenario=None):
        """Every attempt (oldest first), for tests, benchmarks and the timeline."""
        query = "SELECT target, scenario, group_name, run_id, alert_key, started_at, ended_at, outcome FROM attempts"
        where, args = [], []
        if target:
            where.append("target = ?")
            args.append(target)
        if scenario:
            where.append("scenario = ?")
            args.append(scenario)
        if where:
            query += " WHERE " + " AND ".join(where)
        keys = ("target", "scenario", "group", "run_id", "alert_key", "started_at", "ended_at", "outcome")
        rows = self.conn.execute(query + " ORDER BY id", args)
        return [dict(zip(keys, row)) for row in rows]  # noqa: B905 - rows have exactly these columns


def _iso(epoch):
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
