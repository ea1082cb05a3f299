"""Reports of guarded runs (HTML, PNG, Markdown, JSON), read back from their audit logs."""
