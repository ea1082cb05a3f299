"""The `distill-guard` command."""
