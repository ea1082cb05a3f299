"""A cheap, stable digest of a model's current weights, for halt records and quarantine markers."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

SAMPLE_VALUES = 256


def weights_digest(model: nn.Module) -> str:
    """sha256 over every parameter's name, shape, dtype and a strided sample of its values.

    Hashing all weights of a large model at halt time would stall every rank; a strided sample
    still changes with any optimizer step. Under ZeRO-3 / FSDP a rank only sees its shard, so
    the digest names that rank's view, and computing it needs no other rank (a halt record
    is built by the rank that tripped, alone).
    """
    digest = hashlib.sha256()
    module = getattr(model, "module", model)
    with torch.no_grad():
        for name, param in module.named_parameters():
            local = getattr(param, "ds_tensor", param).detach()  # ZeRO-3: this rank's partition; `param` is empty
            if hasattr(local, "to_local"):  # an FSDP2 DTensor: read this rank's shard, never a collective
                local = local.to_local()
            flat = local.reshape(-1)
            stride = max(1, flat.numel() // SAMPLE_VALUES)
            sample = flat[::stride][:SAMPLE_VALUES].to(device="cpu", dtype=torch.float32)
            shape = getattr(param, "ds_shape", param.shape)
            digest.update(f"{name}|{tuple(shape)}|{param.dtype}|".encode())
            digest.update(sample.numpy().tobytes())
    return "sha256:" + digest.hexdigest()
