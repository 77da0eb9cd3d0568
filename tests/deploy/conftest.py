"""Fixtures: the deployment files, parsed once per test session."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.deploy_files import COMPOSE_FILE, KUBE_DIR, load_yaml_documents


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def kube_objects() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every manifest under deploy/kubernetes/ except Helm values."""
    objects = []
    for path in sorted(KUBE_DIR.glob("*.yaml")):
        if path.name in {"prometheus-adapter-rules.yaml", "kustomization.yaml"}:
            continue
        objects.extend((path.name, doc) for doc in load_yaml_documents(path))
    return objects
