"""Every canonical message documents itself: each field has a description and an example, so the
AsyncAPI document is useful to whoever consumes a topic."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from hub.asyncapi import document
from schemas.registry import MESSAGE_TYPES


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[type[BaseModel]]:
    if model in seen:
        return []
    seen.add(model)
    out = [model]
    for field in model.model_fields.values():
        for arg in getattr(field.annotation, "__args__", ()) or (field.annotation,):
            inner = getattr(arg, "__args__", (arg,))
            for t in inner:
                if isinstance(t, type) and issubclass(t, BaseModel):
                    out.extend(_models(t, seen))
    return out


ALL = sorted(
    {m for root in MESSAGE_TYPES.values() for m in _models(root, set())}, key=lambda m: m.__name__
)


@pytest.mark.parametrize("model", ALL, ids=lambda m: m.__name__)
def test_every_field_has_a_description_and_an_example(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            missing.append(f"{name}: description")
        if (
            "examples" not in prop
            and "$ref" not in prop
            and prop.get("type") != "array"
            and "allOf" not in prop
        ):
            missing.append(f"{name}: example")
    assert missing == []


def test_asyncapi_lists_every_topic_and_message_type() -> None:
    doc = document()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert "hub.orders.v1" in addresses and "hub.dlq.v1" in addresses
    titles = {m["title"] for m in doc["components"]["messages"].values()}
    assert set(MESSAGE_TYPES) <= titles


def test_committed_asyncapi_document_is_current() -> None:
    import json
    from pathlib import Path

    committed = Path(__file__).parents[2] / "deploy" / "asyncapi.yaml"
    assert json.loads(committed.read_text()) == json.loads(json.dumps(document())), (
        "deploy/asyncapi.yaml is stale: run `hub asyncapi --output deploy/asyncapi.yaml`"
    )
