"""What every audit-log line carries, so lines from many runs, ranks and versions can be told apart.

The fields are a public contract, described by the committed JSON Schema
`integrations/audit/audit-line.schema.json`; `AUDIT_SCHEMA_VERSION` changes when a field changes
meaning or goes away (adding an event or a field does not).
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from distill_guard._version import __version__

AUDIT_SCHEMA_VERSION = 1


def new_run_id() -> str:
    """A run id that is unique per run, unlike an output folder's name (`out`, `trainer_output`)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LineContext:
    """The fields stamped on every line of one run's audit log."""

    run_id: str
    rank: int
    policy: str
    policy_sha256: str
    host: str = field(default_factory=socket.gethostname)
    version: str = __version__

    def fields(self) -> dict[str, Any]:
        return {
            "schema_version": AUDIT_SCHEMA_VERSION,
            "run_id": self.run_id,
            "rank": self.rank,
            "host": self.host,
            "version": self.version,
            "policy": self.policy,
            "policy_sha256": self.policy_sha256,
        }
