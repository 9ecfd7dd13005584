"""Kubernetes manifests, offline: generated files current, overlays build, every object valid
against the Kubernetes API schemas, topics equal to the catalogue, and the operational rules
(probes, resources, restricted security context, HPA ≤ partitions, single relay) hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gridline_contracts.topics import ALL_TOPICS, DEAD_LETTER_TOPICS, EVENT_TOPICS
from gridline_pii import Keyring

from .kustomize import build

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SERVICES = ("intake", "routing", "escalation", "notify")
K8S_VERSION = "1.32.0"
# prod: from the secret manager
EXTERNAL_SECRETS = {"gridline-database", "intake-pii", "notify-pii", "gridline-staff-tokens"}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, build(K8S / "overlays" / request.param)


def of_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_generated_manifests_are_up_to_date() -> None:
    r = subprocess.run(
        [sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr


def test_every_core_object_is_valid_for_kubernetes(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = overlay
    checked = 0
    for o in objs:
        if o["apiVersion"].startswith("kafka.strimzi.io/"):
            continue  # a CRD: checked against the catalogue below
        kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 27


def test_kafka_topics_are_the_catalogue_including_dead_letters(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objs = overlay
    topics = of_kind(objs, "KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics.values()} == {t.name for t in ALL_TOPICS}
    assert {t.name for t in DEAD_LETTER_TOPICS} <= set(topics)
    replicas = 1 if name == "dev" else 3
    for t in ALL_TOPICS:
        k = topics[t.name]
        assert k["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert k["metadata"]["labels"]["strimzi.io/cluster"] == "gridline"
        assert k["spec"]["partitions"] == t.partitions
        assert k["spec"]["replicas"] == replicas
        assert k["spec"]["config"]["retention.ms"] == t.retention_ms
        assert k["spec"]["config"]["min.insync.replicas"] < replicas or replicas == 1


def test_deployments_have_probes_resources_and_a_restricted_security_context(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objs = overlay
    deployments = of_kind(objs, "Deployment")
    assert set(deployments) == set(SERVICES) | {f"{s}-worker" for s in SERVICES}
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsUser"] == 10001  # the images' user
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], name
            assert ":" in c["image"] and not c["image"].endswith(":latest")
            env = {e["name"]: e["value"] for e in c["env"]}
            roles = set(env["ROLES"].split(","))
            assert roles == ({"relay", "worker"} if name.endswith("-worker") else {"api", "consumer"}), name


def test_exactly_one_relay_per_service(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    """A single relay keeps each ticket's events in order: fixed at one replica, never two at once."""
    _, objs = overlay
    deployments = of_kind(objs, "Deployment")
    hpas = of_kind(objs, "HorizontalPodAutoscaler")
    for s in SERVICES:
        w = deployments[f"{s}-worker"]
        assert w["spec"]["replicas"] == 1 and w["spec"]["strategy"]["type"] == "Recreate"
        assert all(h["spec"]["scaleTargetRef"]["name"] != f"{s}-worker" for h in hpas.values())


def test_hpa_scales_consumers_up_to_their_partitions_and_pdbs_select_them(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objs = overlay
    deployments = of_kind(objs, "Deployment")
    hpas = of_kind(objs, "HorizontalPodAutoscaler")
    pdbs = of_kind(objs, "PodDisruptionBudget")
    services = of_kind(objs, "Service")
    for s in SERVICES:
        hpa = hpas[s]
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": s}
        assert "replicas" not in deployments[s]["spec"], "the HPA owns the replica count"
        partitions = max((t.partitions for t in EVENT_TOPICS if s in t.consumers), default=1)
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions
        pod_labels = deployments[s]["spec"]["template"]["metadata"]["labels"]
        for selector in (pdbs[s]["spec"]["selector"]["matchLabels"], services[s]["spec"]["selector"]):
            assert selector.items() <= pod_labels.items()
        assert deployments[s]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert pdbs[s]["spec"]["minAvailable"] == (0 if name == "dev" else 1)


def test_migrations_run_as_jobs(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = overlay
    jobs = of_kind(objs, "Job")
    for s in SERVICES:
        c = jobs[f"{s}-migrate"]["spec"]["template"]["spec"]["containers"][0]
        assert c["args"] == ["python", "-m", s, "migrate"]
        assert jobs[f"{s}-migrate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_config_and_secret_references_resolve(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objs = overlay
    config_maps, secrets = of_kind(objs, "ConfigMap"), of_kind(objs, "Secret")
    wanted_secrets: set[str] = set()
    for kind in ("Deployment", "Job"):
        for o in of_kind(objs, kind).values():
            for c in o["spec"]["template"]["spec"]["containers"]:
                for ref in c["envFrom"]:
                    if "configMapRef" in ref:
                        assert ref["configMapRef"]["name"] in config_maps
                    else:
                        wanted_secrets.add(ref["secretRef"]["name"])
    assert wanted_secrets == EXTERNAL_SECRETS
    if name == "dev":
        assert wanted_secrets <= set(secrets)
        for s in ("intake-pii", "notify-pii"):
            for key in ("PII_KEY", "PII_TRANSIT_KEY"):
                Keyring.from_spec(secrets[s]["stringData"][key])  # a well-formed key, or this raises
        kid, _, secret = secrets["gridline-staff-tokens"]["stringData"]["STAFF_TOKEN_KEYS"].partition(":")
        assert kid and len(secret) >= 32
    else:
        assert not secrets, "production secrets never live in the repository"
    assert all(o["metadata"].get("namespace") == "gridline" for o in objs if o["kind"] != "Namespace")
