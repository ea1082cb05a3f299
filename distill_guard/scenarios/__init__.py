"""Tiny, self-contained subliminal-learning runs built only from local parts (no downloads)."""
