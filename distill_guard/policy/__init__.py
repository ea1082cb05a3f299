"""The policy language: schema, located YAML loading, semantic checks and lint."""

from distill_guard.policy.load import load_policy, validate_policy_file
from distill_guard.policy.schema import GuardPolicy

__all__ = ["GuardPolicy", "load_policy", "validate_policy_file"]
