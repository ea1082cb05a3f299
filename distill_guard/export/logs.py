"""The guard's INFO lines, shown the way transformers shows its own.

Every module logs under the `distill_guard` logger. At train begin its level follows the Trainer's
`log_level` (`TrainingArguments(log_level="info")` shows the metrics URL, the audit log, the
baseline and one line per evaluation); with the default `passive` it follows transformers'
verbosity unless the application set a level itself. When the application configured no logging,
a stderr handler is added, as transformers adds one to its own logger.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "distill_guard"


def follow_trainer(log_level: str, process_level: int) -> None:
    """`log_level` is `TrainingArguments.log_level`; `process_level` its `get_process_log_level()`."""
    package = logging.getLogger(LOGGER_NAME)
    if log_level != "passive" or package.level == logging.NOTSET:
        package.setLevel(process_level)
    if not package.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(levelname)s|%(name)s] %(message)s"))
        package.addHandler(handler)
