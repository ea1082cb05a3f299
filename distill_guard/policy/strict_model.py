"""Base for every file-backed schema: frozen, and unknown keys refused with a "did you mean"."""

from __future__ import annotations

import difflib
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

UNKNOWN_KEY = "unknown_key"


def repeated(values: list[str]) -> list[str]:
    """The values that occur more than once, sorted: for "listed twice" checks in schemas."""
    return sorted({value for value in values if values.count(value) > 1})


# Unicode categories that render as nothing or reorder text: controls, format (bidi overrides,
# zero-width), surrogates, private use, unassigned, and line/paragraph separators.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def visible(value: str) -> str:
    """Refuse text a reviewer cannot see as it is matched: an id or pattern must look like what it does."""
    for char in value:
        if unicodedata.category(char) in _HIDDEN_CATEGORIES or (char.isspace() and char != " "):
            raise ValueError(
                f"control or invisible character U+{ord(char):04X}; ids and patterns must be plain visible text"
            )
    return value


def _known_keys(model: type[BaseModel]) -> list[str]:
    return sorted(info.alias or name for name, info in model.model_fields.items())


class StrictModel(BaseModel):
    """A frozen model that reports every unknown key (with the closest known one) next to the other errors.

    Pydantic's own `extra="forbid"` cannot say which key was meant; a reviewer fixing a typo
    deserves the suggestion, and all problems at once rather than one per run.
    """

    # defer_build: a model's validator is built on its first use, not at import, so a command builds only
    # the schemas it validates with (`policy validate` never builds the manifest's or a nested model's own).
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False, defer_build=True)

    @model_validator(mode="wrap")
    @classmethod
    def _reject_unknown_keys(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        known = _known_keys(cls)
        unknown = [key for key in data if key not in known]
        if not unknown:
            return handler(data)
        errors: list[InitErrorDetails] = []
        for key in unknown:
            guesses = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{guesses[0]}'?)" if guesses else ""
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        UNKNOWN_KEY,
                        "unknown key '{key}'{hint}; allowed here: {allowed}",
                        {"key": str(key), "hint": hint, "allowed": ", ".join(known)},
                    ),
                    loc=(str(key),),
                    input=data[key],
                )
            )
        try:
            handler({k: v for k, v in data.items() if k in known})
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(err["type"], "{msg}", {"msg": err["msg"]}),
                        loc=err["loc"],
                        input=err.get("input"),
                    )
                )
        raise ValidationError.from_exception_data(cls.__name__, errors)
