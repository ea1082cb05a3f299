"""Trait probes: score a model's leaning towards a trait by log-probability."""
