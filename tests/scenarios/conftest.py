"""Scenario tests train real models: one thread per process, since several engineers share two cores."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
