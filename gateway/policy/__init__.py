"""Declarative policies: risk tiers, model backends and per-application rules.

``load_policies`` reads and validates a directory of YAML files into a ``PolicySet``;
``run_policy_tests`` runs the policy test cases stored next to them.
"""

from gateway.policy.errors import PolicyEvalError
from gateway.policy.loader import load_policies
from gateway.policy.model import (
    ApplicationPolicy,
    BackendSpec,
    ChatMapping,
    Classification,
    OipMapping,
    PolicySet,
    RouteResult,
    TensorSpec,
    TierSpec,
)
from gateway.policy.testing import CaseResult, format_results, run_policy_tests

__all__ = [
    "ApplicationPolicy",
    "BackendSpec",
    "CaseResult",
    "ChatMapping",
    "Classification",
    "OipMapping",
    "PolicyEvalError",
    "PolicySet",
    "RouteResult",
    "TensorSpec",
    "TierSpec",
    "format_results",
    "load_policies",
    "run_policy_tests",
]
