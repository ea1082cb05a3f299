"""A test probe whose scores the test decides, call by call, through DG_CONTROLLED_SCORES.

The variable holds JSON {"run": <unique id>, "rows": [...]}: one row per probe call: a list of item scores (numbers,
or the strings "nan"/"inf"), or the string "raise" to make the probe fail. The last entry repeats.
"""

from __future__ import annotations

import json
import os
from typing import Any

_state = {"plan": None, "calls": 0}


def scores(model: Any, tokenizer: Any, *, target: str | None = None) -> list[float]:
    plan_text = os.environ.get("DG_CONTROLLED_SCORES", '{"run": "default", "rows": [[0.1, 0.1]]}')
    if plan_text != _state["plan"]:
        _state.update(plan=plan_text, calls=0)
    plan = json.loads(plan_text)["rows"]
    row = plan[min(_state["calls"], len(plan) - 1)]
    _state["calls"] += 1
    if row == "raise":
        raise RuntimeError("controlled probe failure")
    return [float(x) for x in row]
