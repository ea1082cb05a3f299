"""Where the guard's observations go: the JSONL audit log and Prometheus."""
