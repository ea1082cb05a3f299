"""Shared test support: one policy builder, one controlled probe, one free-port helper, metric inputs."""
