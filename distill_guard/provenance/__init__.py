"""The provenance gate: decide on where training data came from, before any optimizer step."""
