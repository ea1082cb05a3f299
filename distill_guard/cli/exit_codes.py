"""Exit codes are an interface: CI jobs branch on them."""

OK = 0
INVALID_INPUT = 1
USAGE = 2
DENIED = 3
