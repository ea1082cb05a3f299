"""Screening a dataset before training: the first-order trait shift its gradients predict (docs/screening.md)."""
