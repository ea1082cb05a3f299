"""Turn probe scores into decisions: paired drift against the baseline, thresholds, patience, halt records."""
