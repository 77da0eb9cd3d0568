"""The image: pinned base, multi-stage, non-root, `hub` as entrypoint, health checked without curl."""

from __future__ import annotations

import json
import re

from tests.deploy.deploy_files import REPO, dockerfile_instructions


def _resolved_froms() -> list[str]:
    instructions = dockerfile_instructions()
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
    froms = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            image = rest.split()[0]
            froms.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return froms


def test_base_image_is_python_311_slim_bookworm_pinned_to_a_patch_release_or_digest() -> None:
    froms = _resolved_froms()
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in froms:
        pinned_tag = re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image)
        assert pinned_tag, f"base {image!r} is not python:3.11.<patch>-slim-bookworm[@digest]"


def test_runtime_stage_copies_only_the_built_virtualenv() -> None:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    runtime = instructions[last_from:]
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), copies


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]


def test_entrypoint_is_hub_in_exec_form() -> None:
    entrypoints = [rest for keyword, rest in dockerfile_instructions() if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["hub"]


def test_healthcheck_hits_healthz_with_python_not_curl() -> None:
    checks = [rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0].split("CMD", 1)[1].strip())
    assert command[0] == "python"
    assert "/healthz" in command[-1]
    assert "curl" not in checks[0] and "wget" not in checks[0]


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".env", ".git", ".venv", "var"):
        assert entry in ignored, f"{entry} would be sent to the builder"


def test_what_the_build_copies_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    }
    sources = [
        source
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from=")
        for source in rest.split()[:-1]
    ]
    assert "pyproject.toml" in sources
    for source in sources:
        if "*" in source:
            continue  # a glob may match nothing
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"
