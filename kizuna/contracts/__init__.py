"""Webhook payload schemas and examples, and the APIs' OpenAPI documents, that both services
test against.

    from kizuna import contracts
    contracts.schema("response.completed")    # JSON Schema (draft 2020-12)
    contracts.example("response.completed")   # a complete example body
    contracts.errors(body, contracts.schema("response.completed"))  # [] when valid
    contracts.openapi("survey-v1")            # the committed OpenAPI document of an API

`errors()` checks the subset of JSON Schema these files use (type, const, enum,
required, properties, additionalProperties, items, minLength, minimum, format
date-time/uuid, local $ref), so tests need no extra package.
"""

from __future__ import annotations

import datetime
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EVENT_TYPES = ("invitation.opened", "response.completed", "response.deleted")
# API name -> where the running service serves its document (`make contracts` writes them).
OPENAPI_DOCUMENTS = {
    "crm-v1": "/crm/api/v1/openapi.json",
    "survey-v1": "/survey/api/v1/openapi.json",
}

__all__ = ["EVENT_TYPES", "OPENAPI_DOCUMENTS", "errors", "example", "openapi", "schema"]


@cache
def _load(kind: str, event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event {event_type!r}")
    return (HERE / kind / f"{event_type}.json").read_text(encoding="utf-8")


def schema(event_type: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_load("schemas", event_type))
    return loaded


def example(event_type: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_load("examples", event_type))
    return loaded


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def openapi(name: str) -> dict[str, Any]:
    """The committed OpenAPI document of one API ("crm-v1" or "survey-v1")."""
    if name not in OPENAPI_DOCUMENTS:
        raise ValueError(f"Unknown API {name!r}")
    loaded: dict[str, Any] = json.loads((HERE / "openapi" / f"{name}.json").read_text("utf-8"))
    return loaded


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in {"integer", "number"}:
        return False
    return isinstance(value, _TYPES[name])


def _format_errors(value: str, fmt: str, path: str) -> list[str]:
    try:
        if fmt == "date-time":
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                return [f"{path}: date-time without a time zone: {value!r}"]
        elif fmt == "uuid":
            uuid.UUID(value)
    except ValueError:
        return [f"{path}: not a valid {fmt}: {value!r}"]
    return []


def errors(
    instance: Any, schema: dict[str, Any], *, root: dict[str, Any] | None = None, path: str = "$"
) -> list[str]:
    """Every way `instance` breaks `schema`, as "path: problem" lines; [] when it is valid."""
    root = root if root is not None else schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return errors(instance, target, root=root, path=path)
    found: list[str] = []
    if "const" in schema and instance != schema["const"]:
        found.append(f"{path}: must be {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        found.append(f"{path}: must be one of {schema['enum']!r}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(instance, name) for name in names):
            return [*found, f"{path}: must be of type {' or '.join(names)}"]
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            found.append(f"{path}: shorter than {schema['minLength']}")
        if "format" in schema:
            found.extend(_format_errors(instance, schema["format"], path))
    if _is_type(instance, "number") and "minimum" in schema and instance < schema["minimum"]:
        found.append(f"{path}: less than {schema['minimum']}")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in instance:
                found.append(f"{path}: missing {name!r}")
        for name, value in instance.items():
            if name in properties:
                found.extend(errors(value, properties[name], root=root, path=f"{path}.{name}"))
            elif schema.get("additionalProperties") is False:
                found.append(f"{path}: unexpected {name!r}")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            found.extend(errors(item, schema["items"], root=root, path=f"{path}[{index}]"))
    return found
