"""`runbook lab up --profile NAME`: the profiles are the drill profiles; causal-eval adds a
Redis to the Compose project (its own file, scraped through prometheus-redis-exporter in a
job of its own, described on the Compose host), and a drill mode that needs it is listed as
not automated on a lab without it. The Redis itself runs in tests/integration/test_drills.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runbook_remediation import catalogue, drill, shell
from runbook_remediation.collection import Collection
from runbook_remediation.errors import BadInput, RunbookError
from runbook_remediation.lab import lab as lab_module
from runbook_remediation.lab.lab import PROFILES, Lab, LabHost, LabState, inventory
from runbook_remediation.lab.monitoring import ScrapeTarget, Server, prometheus_config, rules_text

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = {s.name for s in catalogue.catalogue(Collection(REPO, REPO))}
COMPOSE = LabHost("lab-compose", "runbook-x-demo-1", "compose", 40003, replica_ports=[40003, 40004])
STATE = LabState(hosts=[COMPOSE], prometheus_port=40010, alertmanager_port=40011, profiles=["causal-eval"],
                 redis={"port": 40020, "exporter_port": 40021, "exporter_pid": None, "ports": [40020, 40021]})


def test_every_drill_profile_is_a_lab_profile() -> None:
    assert list(PROFILES) == drill.names()


def test_an_unknown_profile_is_refused_before_anything_is_made(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    monkeypatch.setattr(Lab, "client", property(lambda _self: pytest.fail("docker was asked")))
    with pytest.raises(BadInput, match="unknown lab profile nope"):
        lab.up(profiles=("nope",))
    assert not lab.dir.exists()


def test_the_cli_offers_the_profiles(runbook_env) -> None:
    result = CliRunner().invoke(shell.cli, ["lab", "up", "--profile", "nope"])
    assert result.exit_code == 2 and "causal-eval" in result.output


def test_causal_eval_puts_a_redis_in_the_compose_project_on_its_own_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    assert "redis" not in lab.compose_file(COMPOSE)["services"]
    redis = lab.compose_file(COMPOSE, redis_port=40020)["services"]["redis"]
    assert redis["command"] == ["redis-server", "/etc/runbook-redis/redis.conf"]
    assert redis["network_mode"] == "host" and redis["volumes"] == [f"{lab.redis_dir}:/etc/runbook-redis"]
    assert redis["labels"][lab_module.LABEL] == "x"  # `lab down` finds it
    assert lab.redis_container == "runbook-x-redis-1"

    assert lab._write_redis_conf(40020, overwrite=False) is True
    text = (lab.redis_dir / "redis.conf").read_text()
    assert "bind 127.0.0.1\nport 40020\n" in text
    assert "maxmemory 4mb\nmaxmemory-policy noeviction\n" in text
    (lab.redis_dir / "redis.conf").write_text(text.replace("4mb", "8mb"))  # a raise redis-memory kept
    assert lab._write_redis_conf(40020, overwrite=False) is False  # `up` keeps it ...
    assert "maxmemory 8mb" in (lab.redis_dir / "redis.conf").read_text()
    assert lab._write_redis_conf(40020, overwrite=True) is True  # ... heal puts it back
    assert "maxmemory 4mb" in (lab.redis_dir / "redis.conf").read_text()


def test_the_redis_is_a_service_of_the_compose_host_and_scraped_in_a_job_of_its_own(tmp_path: Path) -> None:
    hosts = inventory(STATE, tmp_path / "compose", "runbook-x")["all"]["children"]["lab"]["children"]
    demo, redis = hosts["lab_compose"]["hosts"]["lab-compose"]["runbook_services"]
    assert demo["name"] == "demo"
    assert redis == {
        "name": "redis", "manager": "compose", "container": "runbook-x-redis-1",
        "project_src": str(tmp_path / "compose"), "project": "runbook-x", "compose_service": "redis",
        "health_url": "redis://127.0.0.1:40020",
        "redis": {"ceiling": "64M", "config_file": str(tmp_path / "redis" / "redis.conf")},
    }
    without = LabState(hosts=[COMPOSE], prometheus_port=1, alertmanager_port=2)
    services = inventory(without, tmp_path, "x")["all"]["children"]["lab"]["children"]["lab_compose"]["hosts"]
    assert [s["name"] for s in services["lab-compose"]["runbook_services"]] == ["demo"]

    config = prometheus_config([], 40011, Path("/x/rules.yml"), [],
                               [ScrapeTarget("lab-compose", "redis", "compose", 40021)])
    demo_job, redis_job, _postgres_job = config["scrape_configs"]
    assert demo_job["job_name"] == "runbook-demo"
    assert redis_job == {"job_name": "runbook-redis", "static_configs": [
        {"targets": ["127.0.0.1:40021"], "labels": {"host": "lab-compose", "service": "redis", "manager": "compose"}}]}
    # Without the profile the exporters' jobs stay, with no targets (their series go stale).
    assert [(job["job_name"], job["static_configs"]) for job in prometheus_config([], 1, Path("/x"))[
        "scrape_configs"][1:]] == [("runbook-redis", []), ("runbook-postgres", [])]
    rules = {r["alert"]: r for g in yaml.safe_load(rules_text())["groups"] for r in g["rules"]}
    assert 'redis_up{job="runbook-redis"} == 0' in rules["RedisDown"]["expr"]
    assert "redis_memory_used_bytes" in rules["RedisOutOfMemory"]["expr"]

    # The PostgreSQL's exporter: a job of its own, seed 004's alert name on its metrics.
    config = prometheus_config([], 40011, Path("/x/rules.yml"), [], [],
                               [ScrapeTarget("lab-compose", "postgres", "compose", 40031)])
    labels = {"host": "lab-compose", "service": "postgres", "manager": "compose"}
    assert config["scrape_configs"][2] == {"job_name": "runbook-postgres", "static_configs": [
        {"targets": ["127.0.0.1:40031"], "labels": labels}]}
    expr = rules["database_connection_pool_exhausted"]["expr"]
    assert 'pg_stat_activity_count{job="runbook-postgres"}' in expr and "superuser_reserved_connections" in expr


def test_the_exporter_reads_the_profiles_redis_on_loopback(tmp_path: Path) -> None:
    exporter = Server("redis-exporter", tmp_path, 40021, redis_port=40020)
    argv = exporter.argv()
    assert argv[1:] == ["-redis.addr", "redis://127.0.0.1:40020", "-web.listen-address", "127.0.0.1:40021"]
    assert exporter.marker == "127.0.0.1:40021" and exporter.title == "the Redis exporter"


def test_the_postgres_exporter_logs_in_with_a_password_file_never_an_argument(tmp_path: Path) -> None:
    exporter = Server("postgres-exporter", tmp_path, 40031, postgres=(40030, "runbook_admin", tmp_path / "pw"))
    assert exporter.argv()[1:] == ["--web.listen-address=127.0.0.1:40031", "--log.level=warn"]
    assert exporter.environment() == {"DATA_SOURCE_URI": "127.0.0.1:40030/postgres?sslmode=disable",
                                      "DATA_SOURCE_USER": "runbook_admin",
                                      "DATA_SOURCE_PASS_FILE": str(tmp_path / "pw")}
    assert exporter.marker == "127.0.0.1:40031" and exporter.title == "the PostgreSQL exporter"
    assert Server("redis-exporter", tmp_path, 1, redis_port=2).environment() == {}


class Lab_:
    """A lab whose state is given: what drill.run reads of it."""

    def __init__(self, state):
        self._state = state

    def state(self):
        return self._state

    def host(self, name):
        return next(h for h in self._state.hosts if h.name == name)

    def heal(self, name):
        return f"healed {name}"


def test_a_mode_that_needs_the_profiles_redis_or_postgresql_is_not_automated_without_it() -> None:
    profile = drill.load("causal-eval", lab_module.FAULTS + lab_module.LAB_FAULTS, SCENARIOS)
    lab = Lab_(LabState(hosts=[COMPOSE], prometheus_port=1, alertmanager_port=2))
    report = drill.run(lab, profile, only=("redis-full", "redis-down", "pool-exhausted", "index-corruption"))
    reasons = {row["mode"]: row["reason"] for row in report["modes"]}
    assert reasons == {"redis-full": "the lab has no redis: runbook lab up --profile causal-eval",
                       "redis-down": "the lab has no redis: runbook lab up --profile causal-eval",
                       "pool-exhausted": "the lab has no postgresql: runbook lab up --profile causal-eval",
                       "index-corruption": "the lab has no postgresql: runbook lab up --profile causal-eval"}


def test_causal_eval_puts_a_postgresql_in_the_compose_project_with_its_data_in_the_lab(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    assert "postgres" not in lab.compose_file(COMPOSE, redis_port=40020)["services"]
    postgres = lab.compose_file(COMPOSE, postgres_port=40022)["services"]["postgres"]
    assert postgres["command"] == ["runbook-postgres", "40022", "-c", "max_connections=20"]
    assert postgres["network_mode"] == "host" and postgres["stop_signal"] == "SIGINT"
    assert postgres["volumes"] == [f"{lab.postgres_dir / 'data'}:/var/lib/runbook-pg"]
    assert postgres["env_file"] == [str(lab.postgres_dir / "server.env")]
    assert postgres["labels"][lab_module.LABEL] == "x"  # `lab down` finds it
    assert lab.postgres_container == "runbook-x-postgres-1"


def test_the_postgresql_passwords_are_made_once_private_and_kept_out_of_the_inventory(tmp_path: Path) -> None:
    from runbook_remediation.lab.postgres import Postgres

    server = Postgres(tmp_path / "postgres", 40022)
    server.write_files()
    admin, app = server.admin_password, server.app_password
    assert admin != app and len(admin) >= 20
    for name in ("admin-password", "app-password", "server.env"):
        assert (tmp_path / "postgres" / name).stat().st_mode & 0o777 == 0o600, name
    assert (tmp_path / "postgres" / "server.env").read_text() == f"PGUSER=runbook_admin\nPGPW={admin}\n"
    again = Postgres(tmp_path / "postgres", 40022)
    assert (again.admin_password, again.app_password) == (admin, app)  # `up` again: the same

    state = LabState(hosts=[COMPOSE], prometheus_port=1, alertmanager_port=2, postgres={"port": 40022})
    data = inventory(state, tmp_path / "compose", "runbook-x")
    demo, postgres = data["all"]["children"]["lab"]["children"]["lab_compose"]["hosts"]["lab-compose"][
        "runbook_services"]
    assert demo["database"]["type"] == "sqlite"  # the demo's own queue, as before
    assert postgres["name"] == "postgres" and postgres["compose_service"] == "postgres"
    assert postgres["health_url"] == "tcp://127.0.0.1:40022"
    database = postgres["database"]
    assert {k: database[k] for k in ("type", "name", "host", "port", "user")} == {
        "type": "postgresql", "name": "causal_eval", "host": "127.0.0.1", "port": 40022, "user": "runbook_admin"}
    assert database["password"] == (
        "{{ lookup('ansible.builtin.file', \"" + str(tmp_path / "postgres" / "admin-password") + "\") }}")
    assert admin not in yaml.safe_dump(data)


def test_the_password_lookup_reads_its_path_as_data_whatever_the_state_directory_is_called(tmp_path: Path) -> None:
    """A state directory named with a quote and a template: the lookup gets the path as it is,
    and the pipe lookup inside it never runs."""
    import jinja2

    compose_dir = tmp_path / "x' ~ lookup('pipe', 'touch /tmp/pwn') ~ '{{ lookup('pipe', 'id') }}\"" / "compose"
    state = LabState(hosts=[COMPOSE], prometheus_port=1, alertmanager_port=2, postgres={"port": 40022})
    services = inventory(state, compose_dir, "runbook-x")["all"]["children"]["lab"]["children"]["lab_compose"][
        "hosts"]["lab-compose"]["runbook_services"]
    calls = []
    rendered = jinja2.Environment(autoescape=False).from_string(services[1]["database"]["password"]).render(
        lookup=lambda *args: calls.append(args) or "secret")
    assert rendered == "secret"
    assert calls == [("ansible.builtin.file", str(compose_dir.parent / "postgres" / "admin-password"))]


def test_a_mode_needing_what_no_profile_adds_is_refused(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("profile: bad\nseed: '004'\nsystem: x\nhost: lab-compose\nmodes:\n"
                                      "  - {name: m, title: t, fault: crash, scenario: service-down, needs: kafka}\n")
    monkeypatch.setattr(drill, "_files", lambda: tmp_path)
    with pytest.raises(RunbookError, match="needs 'kafka', no lab profile's part"):
        drill.load("bad", lab_module.FAULTS, {"service-down"})


def test_ggen_mcp_runs_the_docker_service_on_the_office_image_and_its_leak_mode_needs_it(
        tmp_path: Path, monkeypatch) -> None:
    from runbook_remediation.lab import image

    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    docker = LabHost("lab-docker", "runbook-x-lab-docker", "docker", 40002)
    assert lab._docker_image(LabState(hosts=[docker], profiles=["causal-eval"])) == image.IMAGE
    assert lab._docker_image(LabState(hosts=[docker], profiles=["ggen-mcp"])) == image.OFFICE_IMAGE
    assert lab_module.PROFILE_PARTS["ggen-mcp"] == ("libreoffice", "redis", "postgresql")

    profile = drill.load("ggen-mcp", lab_module.FAULTS + lab_module.LAB_FAULTS, SCENARIOS)
    [mode] = [m for m in profile.modes if m.name == "libreoffice-leak"]
    assert (mode.fault, mode.scenario, mode.needs) == ("soffice-leak", "soffice-leak", "libreoffice")
    assert mode.extra["soffice_cleanup_user"] == "nobody"  # never root: the cleanup's scope
    report = drill.run(Lab_(LabState(hosts=[docker], prometheus_port=1, alertmanager_port=2)), profile,
                       only=("libreoffice-leak",))
    assert report["modes"][0]["reason"] == "the lab has no libreoffice: runbook lab up --profile ggen-mcp"


@pytest.mark.parametrize(("host", "params", "words"), [
    ("lab-compose", {}, "soffice-leak needs the Docker host of `runbook lab up --profile ggen-mcp`, not lab-compose"),
    ("lab-docker", {"count": 9}, "soffice-leak: count must be 1 to 5, not 9"),
])
def test_a_soffice_leak_it_cannot_make_is_bad_input(tmp_path: Path, monkeypatch, host, params, words) -> None:
    from runbook_remediation.lab import image

    class Container:
        def __init__(self):
            self.attrs = {"Config": {"Image": image.OFFICE_IMAGE}}

        def exec_run(self, *args, **kwargs):
            pytest.fail("nothing may start")

    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    docker = LabHost("lab-docker", "runbook-x-lab-docker", "docker", 40002)
    LabState(hosts=[docker, COMPOSE], profiles=["ggen-mcp"]).save(lab.state_path)
    monkeypatch.setattr(Lab, "_container", lambda _self, _name: Container())
    with pytest.raises(BadInput) as raised:
        lab.break_service("soffice-leak", host, params)
    assert raised.value.message == words


def test_causal_eval_runs_a_worker_that_calls_the_api_and_is_scraped_as_a_service_of_its_own(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    assert "worker" in lab_module.PROFILE_PARTS["causal-eval"]
    assert "worker" not in lab.compose_file(COMPOSE, redis_port=40020)["services"]
    worker = lab.compose_file(COMPOSE, worker_port=40040)["services"]["worker"]
    command = worker["command"]
    assert command[command.index("--port") + 1] == "40040" and command[command.index("--name") + 1] == "worker"
    assert command[command.index("--upstream") + 1] == "http://127.0.0.1:40003/api/work"  # the API's port
    assert worker["network_mode"] == "host" and worker["labels"][lab_module.LABEL] == "x"  # `lab down` finds it
    assert lab.worker_container == "runbook-x-worker-1"

    state = LabState(hosts=[COMPOSE], prometheus_port=1, alertmanager_port=2, worker={"port": 40040})
    services = inventory(state, tmp_path / "compose", "runbook-x")["all"]["children"]["lab"]["children"][
        "lab_compose"]["hosts"]["lab-compose"]["runbook_services"]
    described = {s["name"]: s for s in services}["worker"]
    assert {k: described[k] for k in ("manager", "container", "compose_service", "health_url", "port")} == {
        "manager": "compose", "container": "runbook-x-worker-1", "compose_service": "worker",
        "health_url": "http://127.0.0.1:40040/health", "port": 40040}
    # The API needs a key the worker sends: both read the project's env file, which
    # key-rotation rotates (the worker its consumer); the file is private and kept by `up`.
    with_worker = lab.compose_file(COMPOSE, worker_port=40040)["services"]
    assert with_worker["demo"]["env_file"] == ["api.env"] and with_worker["worker"]["env_file"] == ["api.env"]
    assert "env_file" not in lab.compose_file(COMPOSE)["services"]["demo"]
    assert lab._write_api_key(overwrite=False) is True
    key_text = lab.api_key_file.read_text()
    assert key_text.startswith("DEMO_API_KEY=") and len(key_text.strip()) > 50
    assert lab.api_key_file.stat().st_mode & 0o777 == 0o600
    assert lab._write_api_key(overwrite=False) is False and lab.api_key_file.read_text() == key_text
    assert lab._write_api_key(overwrite=True) is True and lab.api_key_file.read_text() != key_text  # heal
    api = {s["name"]: s for s in services}["demo"]
    assert api["key_rotation"] == {"env_file": str(tmp_path / "compose" / "api.env"), "variable": "DEMO_API_KEY",
                                   "verify_url": "http://127.0.0.1:40003/api/work", "consumers": ["worker"]}
    assert lab.api_key_file.read_text().split("=", 1)[1].strip() not in yaml.safe_dump(services)
    found = lab.worker_host(state)
    assert (found.name, found.port, found.container) == ("lab-compose", 40040, "runbook-x-worker-1")
    assert lab.worker_host(LabState(hosts=[COMPOSE])) is None

    profile = drill.load("causal-eval", lab_module.FAULTS + lab_module.LAB_FAULTS, SCENARIOS)
    [mode] = [m for m in profile.modes if m.name == "worker-down"]
    assert (mode.fault, mode.alert, mode.service, mode.needs) == ("worker-down", "ServiceDown", "worker", "worker")
    report = drill.run(Lab_(LabState(hosts=[COMPOSE], prometheus_port=1, alertmanager_port=2)), profile,
                       only=("worker-down",))
    assert report["modes"][0]["reason"] == "the lab has no worker: runbook lab up --profile causal-eval"


def test_an_alert_counts_only_for_the_service_it_names(monkeypatch) -> None:
    from runbook_remediation.lab import monitoring

    alerts = [{"state": "firing", "labels": {"alertname": "ServiceDown", "host": "lab-compose", "service": "worker"}},
              {"state": "pending", "labels": {"alertname": "ServiceDown", "host": "lab-compose", "service": "demo"}}]
    monkeypatch.setattr(monitoring, "http_json", lambda _url, timeout: {"data": {"alerts": alerts}})
    lab = Lab_(LabState(hosts=[COMPOSE], prometheus_port=1, alertmanager_port=2))
    assert drill.firing(lab, "ServiceDown", "lab-compose", "worker")
    assert not drill.firing(lab, "ServiceDown", "lab-compose", "demo")  # pending is not firing
    assert not drill.firing(lab, "ServiceDown", "lab-1", "worker")


def test_the_new_faults_refuse_bad_input_before_touching_anything(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_LAB_NAME", "x")
    lab = Lab(tmp_path)
    LabState(hosts=[LabHost("lab-1", "runbook-x-lab-1", "systemd", 40001), COMPOSE]).save(lab.state_path)
    monkeypatch.setattr(Lab, "client", property(lambda _self: pytest.fail("docker was asked")))
    with pytest.raises(BadInput, match="port-taken needs the Docker lab host; lab-1 is systemd"):
        lab.break_service("port-taken", "lab-1")
    with pytest.raises(BadInput, match="port-taken needs the Docker lab host; lab-compose is compose"):
        lab.break_service("port-taken", "lab-compose")  # its replicas would start on another port
    with pytest.raises(BadInput, match="iterations must be 100 to 5000, not '9'"):
        lab.break_service("heavy-work", "lab-1", {"iterations": "9"})
    with pytest.raises(BadInput, match="worker-down needs the Compose host of `runbook lab up --profile causal-eval`"):
        lab.break_service("worker-down", "lab-compose")  # the lab has no worker
    docker = LabHost("lab-docker", "runbook-x-lab-docker", "docker", 40002)
    LabState(hosts=[docker], port_holder={"pid": 1, "port": 40002}).save(lab.state_path)
    with pytest.raises(BadInput, match="port 40002 is taken already"):
        lab.break_service("port-taken", "lab-docker")
