"""Validators for Prometheus Operator resources, from the operator's own v1 CRD schemas (vendored, see
tests/observability/prometheus_operator_crds/README.md), as strict as `kubectl apply --validate=strict`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

CRDS = Path(__file__).resolve().parents[1] / "observability" / "prometheus_operator_crds"


def refusing_unknown_fields(schema: Any) -> Any:
    """The schema with unknown fields refused where it lists an object's fields: the API server would
    silently prune them (or refuse them under strict field validation); either way a typo is lost."""
    if isinstance(schema, list):
        return [refusing_unknown_fields(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: refusing_unknown_fields(value) for key, value in schema.items()}
    lists_fields = "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields")
    if lists_fields and "additionalProperties" not in schema:
        strict["additionalProperties"] = False
    return strict


def crd_validator(plural: str) -> Draft7Validator:
    """`prometheusrules` or `podmonitors`: a validator for that resource's v1 schema."""
    schema = json.loads((CRDS / f"{plural}.v1.json").read_text("utf-8"))
    return Draft7Validator(refusing_unknown_fields(schema))


def problems(plural: str, resource: dict[str, Any]) -> list[str]:
    """Every schema violation of `resource`, as `path: message` (empty when it is valid)."""
    errors = crd_validator(plural).iter_errors(resource)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
