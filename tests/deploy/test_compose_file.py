"""docker-compose.yml: valid per the compose specification, and wired the way production needs."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.deploy_files import COMPOSE_FILE, HUB_ROLE_SERVICES, PROMETHEUS_CONFIG, REPO

# The compose-spec JSON schema as vendored by check-jsonschema (`--builtin-schema
# vendor.compose-spec`), so that the check runs offline and the schema is updated with the package.
COMPOSE_SCHEMA = json.loads(
    resources.files("check_jsonschema.builtin_schemas.vendor")
    .joinpath("compose-spec.json")
    .read_text()
)


def _errors(document: dict[str, Any]) -> list[str]:
    # The schema declares its draft (2020-12 today); its `unevaluatedProperties` is what rejects
    # unknown keys, so validate with the draft it declares, not a fixed older one.
    validator = jsonschema.validators.validator_for(COMPOSE_SCHEMA)(COMPOSE_SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    assert _errors(compose) == []


def test_the_schema_check_would_catch_a_broken_file(compose: dict[str, Any]) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["core"]["depends_on"]["migrate"]["condition"] = "service_done"
    broken["services"]["relay"]["restart_policy"] = "always"
    errors = _errors(broken)
    assert any("service_done" in e for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


def test_kafka_runs_in_kraft_mode_from_the_official_image_without_zookeeper(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert not any(
        "zookeeper" in name or "zookeeper" in str(s.get("image", ""))
        for name, s in services.items()
    )
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"]), kafka["image"]
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image!r} is not pinned"
    assert compose["services"]["postgres"]["image"].startswith("postgres:15.")


def test_every_service_has_a_restart_policy_and_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("restart"), f"{name} has no restart policy"
        check = service.get("healthcheck")
        assert check, f"{name} has no health check"
        if check.get("disable"):
            # Only the one-shot job may go without: its health is its exit code.
            assert name == "migrate", f"{name} disables its health check"
        else:
            assert check["test"], name


def test_migrate_runs_once_and_every_hub_role_waits_for_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["restart"].startswith("on-failure")
    for name in HUB_ROLE_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == "service_healthy", name


def test_gateway_and_core_run_two_replicas(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["gateway"]["deploy"]["replicas"] == 2
    assert services["core"]["deploy"]["replicas"] == 2
    for name in ("gateway", "core"):
        assert "container_name" not in services[name], f"{name}: a fixed name prevents replicas"


def test_secrets_come_from_the_uncommitted_env_file(compose: dict[str, Any]) -> None:
    secret_words = ("PASSWORD", "TOKEN", "SECRET")
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if any(word in key for word in secret_words) or re.search(r"://[^/]*@", str(value)):
                assert "${" in str(value), f"{name}: {key} is a literal secret"
    env_files = {
        entry["path"] if isinstance(entry, dict) else entry
        for service in compose["services"].values()
        for entry in service.get("env_file", [])
    }
    assert env_files == {".env"}
    assert (REPO / ".env.example").is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False
    ).returncode
    assert ignored == 0, ".env is not ignored by git"


def test_every_variable_the_compose_file_interpolates_is_in_env_example() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert used - example == set()


def test_bind_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"


def test_prometheus_scrapes_every_hub_role(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    scraped = set()
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            scraped.update(sd["names"])
            assert sd["port"] == 8080
        for static in job.get("static_configs", []):
            scraped.update(t.split(":")[0] for t in static["targets"])
    missing = set(HUB_ROLE_SERVICES) - scraped
    assert missing == set(), f"roles not scraped: {missing}"
    assert set(HUB_ROLE_SERVICES) <= set(compose["services"])


@pytest.mark.parametrize("service", ["prometheus", "grafana"])
def test_monitoring_config_is_mounted(compose: dict[str, Any], service: str) -> None:
    sources = [v.split(":", 1)[0] for v in compose["services"][service]["volumes"]]
    assert any(s.startswith("./deploy/") for s in sources), sources
