"""What the deployment files run and set exists: `hub` commands in the CLI, `HUB_*` in Settings."""

from __future__ import annotations

import importlib
import importlib.util
import json
from typing import Annotated, Any

import pytest
import typer

from hub.config import Settings
from tests.deploy.deploy_files import (
    DOCKERFILE,
    KUBE_DIR,
    REPO,
    as_list,
    dockerfile_env,
    dockerfile_instructions,
    hub_invocations,
    load_yaml_documents,
    pod_specs,
)

# The CLI of INTERFACE.md. Upper-case words are arguments; options (starting with -) are ignored.
CLI_COMMANDS = (
    "serve",
    "run gateway",
    "run core",
    "run relay",
    "run connector NAME",
    "demo",
    "db upgrade",
    "topics ensure",
    "stock show SKU",
    "stock count FILE",
    "connector list",
    "connector resync ACCOUNT",
    "connector push-stock ACCOUNT",
    "reconcile ACCOUNT",
    "lag",
    "dlq list",
    "dlq replay ID",
    "bench",
)
HUB_IMAGE = "stock-hub"


def _positional(argv: list[str]) -> list[str]:
    return [word for word in argv if not word.startswith("-")]


def matches_interface(argv: list[str]) -> bool:
    words = _positional(argv)
    for pattern in CLI_COMMANDS:
        expected = pattern.split()
        if len(words) == len(expected) and all(
            e.isupper() or e == w for e, w in zip(expected, words, strict=True)
        ):
            return True
    return False


def _compose_invocations(compose: dict[str, Any]) -> dict[str, list[list[str]]]:
    default_cmd = _dockerfile_json("CMD")
    found = {}
    for name, service in compose["services"].items():
        if "build" not in service and not str(service.get("image", "")).startswith(HUB_IMAGE):
            continue
        entrypoint = as_list(service.get("entrypoint")) or None
        command = as_list(service.get("command")) or default_cmd
        found[f"compose:{name}"] = hub_invocations(entrypoint, command)
    return found


def _dockerfile_json(keyword: str) -> list[str]:
    values = [rest for k, rest in dockerfile_instructions() if k == keyword]
    return list(json.loads(values[-1]))


def _kube_invocations(kube_objects: list[tuple[str, dict[str, Any]]]) -> dict[str, list[list[str]]]:
    found = {}
    default_cmd = _dockerfile_json("CMD")
    for name, pod in pod_specs(kube_objects):
        for container in pod["containers"]:
            if not container["image"].split("/")[-1].startswith(HUB_IMAGE):
                continue
            entrypoint = container.get("command")
            args = container.get("args") or default_cmd
            found[f"kubernetes:{name}"] = hub_invocations(entrypoint, args)
    return found


@pytest.fixture(scope="module")
def invocations(
    compose: dict[str, Any], kube_objects: list[tuple[str, dict[str, Any]]]
) -> dict[str, list[list[str]]]:
    found = {"Dockerfile": hub_invocations(_dockerfile_json("ENTRYPOINT"), _dockerfile_json("CMD"))}
    found |= _compose_invocations(compose)
    found |= _kube_invocations(kube_objects)
    return found


def test_deployment_files_run_the_roles_and_the_migration(
    invocations: dict[str, list[list[str]]],
) -> None:
    ran = {" ".join(argv) for argvs in invocations.values() for argv in argvs}
    for needed in ("run gateway", "run core", "run relay", "db upgrade", "topics ensure"):
        assert needed in ran, f"nothing runs `hub {needed}`"
    assert any(cmd.startswith("run connector ") for cmd in ran)
    assert any(k.startswith("compose:") for k in invocations)
    assert any(k.startswith("kubernetes:") for k in invocations)


def test_every_hub_command_run_is_in_the_documented_cli(
    invocations: dict[str, list[list[str]]],
) -> None:
    unknown = {
        where: argv
        for where, argvs in invocations.items()
        for argv in argvs
        if not matches_interface(argv)
    }
    assert unknown == {}


def test_the_command_check_refuses_what_the_cli_lacks() -> None:
    assert not matches_interface(["run", "worker"])
    assert not matches_interface(["db", "migrate"])
    assert not matches_interface(["run", "connector"])
    assert matches_interface(["run", "connector", "acme"])
    assert matches_interface(["lag", "--json"])


def _cli_accepts(group: Any, argv: list[str]) -> str | None:
    """Why the command tree behind the Typer app would refuse `argv` (None when it accepts it).

    Duck-typed on the click API (`commands`, `params`, `param_type_name`): recent Typer releases
    ship their own copy of click, so isinstance checks against `click` would not hold.
    """
    command = group
    words = _positional(argv)
    while hasattr(command, "commands") and words:
        sub = command.commands.get(words[0])
        if sub is None:
            return f"no command {words[0]!r} under {command.name!r}"
        command, words = sub, words[1:]
    if hasattr(command, "commands"):
        return f"{command.name!r} needs a subcommand"
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    unlimited = any(a.nargs < 0 for a in arguments)
    if not unlimited and len(words) > len(arguments):
        return f"too many arguments for {command.name!r}: {words}"
    if len(words) < sum(1 for a in arguments if a.required):
        return f"missing arguments for {command.name!r}: {words}"
    for argument, word in zip(arguments, words, strict=False):
        choices = getattr(getattr(argument, "type", None), "choices", None)
        if choices is not None and word not in choices:
            return f"{word!r} is not one of {list(choices)}"
    return None


def test_the_typer_check_refuses_what_an_app_lacks() -> None:
    app = typer.Typer()
    db = typer.Typer()
    app.add_typer(db, name="db")

    @db.command("upgrade")
    def upgrade() -> None: ...

    @app.command("run")
    def run(role: str, name: Annotated[str | None, typer.Argument()] = None) -> None: ...

    cli = typer.main.get_command(app)
    assert _cli_accepts(cli, ["db", "upgrade"]) is None
    assert _cli_accepts(cli, ["run", "connector", "acme"]) is None
    assert _cli_accepts(cli, ["db", "migrate"]) is not None
    assert _cli_accepts(cli, ["db"]) is not None
    assert _cli_accepts(cli, ["run", "connector", "acme", "extra"]) is not None
    assert _cli_accepts(cli, ["serve"]) is not None


def test_every_hub_command_run_exists_in_the_typer_app(
    invocations: dict[str, list[list[str]]],
) -> None:
    try:
        available = importlib.util.find_spec("hub.cli.main") is not None
    except ModuleNotFoundError:
        available = False
    if not available:
        pytest.skip("hub.cli.main is not there yet; the documented-CLI check above still ran")
    app = importlib.import_module("hub.cli.main").app
    cli = typer.main.get_command(app)
    refused = {
        f"{where}: hub {' '.join(argv)}": reason
        for where, argvs in invocations.items()
        for argv in argvs
        if (reason := _cli_accepts(cli, argv))
    }
    assert refused == {}


# --- HUB_* environment variables ------------------------------------------------------------------

SETTINGS_VARIABLES = {f"HUB_{name.upper()}" for name in Settings.model_fields}


def _env_example() -> set[str]:
    return {
        line.split("=", 1)[0].strip()
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }


def _set_hub_variables(
    compose: dict[str, Any], kube_objects: list[tuple[str, dict[str, Any]]]
) -> dict[str, set[str]]:
    where: dict[str, set[str]] = {}

    def add(source: str, names: Any) -> None:
        for name in names:
            if name.startswith("HUB_"):
                where.setdefault(source, set()).add(name)

    add(DOCKERFILE.name, dockerfile_env())
    add(".env.example", _env_example())
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        add(f"compose:{name}", env if isinstance(env, dict) else [e.split("=")[0] for e in env])
    for filename, obj in kube_objects:
        if obj["kind"] in {"ConfigMap", "Secret"}:
            add(
                f"{filename}:{obj['metadata']['name']}",
                {**obj.get("data", {}), **obj.get("stringData", {})},
            )
    for name, pod in pod_specs(kube_objects):
        for container in pod["containers"]:
            add(f"kubernetes:{name}", [e["name"] for e in container.get("env", [])])
    return where


def test_hub_variables_are_set_somewhere(
    compose: dict[str, Any], kube_objects: list[tuple[str, dict[str, Any]]]
) -> None:
    where = _set_hub_variables(compose, kube_objects)
    assert {"HUB_KAFKA_BOOTSTRAP", "HUB_DATABASE_URL"} <= set().union(*where.values())
    assert any(k.startswith("compose:") for k in where)
    assert any(k.startswith("configmap.yaml") for k in where)


def test_every_hub_variable_set_is_a_field_of_settings(
    compose: dict[str, Any], kube_objects: list[tuple[str, dict[str, Any]]]
) -> None:
    unknown = {
        source: sorted(names - SETTINGS_VARIABLES)
        for source, names in _set_hub_variables(compose, kube_objects).items()
        if names - SETTINGS_VARIABLES
    }
    assert unknown == {}


def test_settings_read_the_values_the_deployment_sets(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The values compose gives the roles must be ones Settings accepts (types, literals, bounds).
    env = compose["services"]["core"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.topic_partitions == int(env["HUB_TOPIC_PARTITIONS"])
    assert settings.http_host == "0.0.0.0"
    (config_map,) = [
        obj
        for obj in load_yaml_documents(KUBE_DIR / "configmap.yaml")
        if obj["metadata"]["name"] == "hub-env"
    ]
    monkeypatch.delenv("HUB_KAFKA_BOOTSTRAP")
    for key, value in config_map["data"].items():
        monkeypatch.setenv(key, value)
    assert Settings().topic_replication == 3
