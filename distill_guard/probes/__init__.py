"""Trait probes: score a model's leaning towards a trait by log-probability.

The public surface is re-exported from `distill_guard`; this package's modules are internal.
"""
