"""Paths and readers for the deployment files (compose, Dockerfile, Kubernetes, Prometheus, Grafana)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
KUBE_DIR = REPO / "deploy" / "kubernetes"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_RULES = REPO / "deploy" / "prometheus" / "rules" / "hub.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "hub.json"
# Kubernetes manifests that are not applied (examples, Helm values) but must still be valid.
KUBE_NOT_APPLIED = {"secret.example.yaml", "prometheus-adapter-rules.yaml", "kustomization.yaml"}
HUB_ROLE_SERVICES = ("gateway", "core", "relay", "connector-worker")


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def pod_specs(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    for _, obj in kube_objects:
        if obj["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def _hub_lines_in_shell(script: str) -> list[list[str]]:
    """The `hub ...` command lines of a shell script (split at &&, ||, ; and newlines)."""
    lines = []
    for part in re.split(r"&&|\|\||;|\n", script):
        words = shlex.split(part)
        if words and words[0] == "hub":
            lines.append(words[1:])
        elif any(w == "hub" for w in words):
            raise AssertionError(f"`hub` inside a command this test cannot read: {part!r}")
    return lines


def hub_invocations(entrypoint: list[str] | None, command: list[str]) -> list[list[str]]:
    """The `hub` argument lists a container runs, from its entrypoint and command.

    With the image's default entrypoint (`hub`) the command is the argument list itself; with a
    shell entrypoint (`/bin/sh -c SCRIPT`) every `hub ...` in the script counts.
    """
    entrypoint = entrypoint or ["hub"]
    full = [*entrypoint, *command]
    if full[0] == "hub":
        return [full[1:]]
    if Path(full[0]).name in {"sh", "bash"} and "-c" in full:
        script = full[full.index("-c") + 1]
        return _hub_lines_in_shell(script)
    raise AssertionError(f"unexpected entrypoint {entrypoint!r}")


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """Variables set by ENV instructions (KEY=VALUE form)."""
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, sep, value = item.partition("=")
                assert sep, f"ENV without '=' is not used here: {rest!r}"
                env[key] = value
    return env
