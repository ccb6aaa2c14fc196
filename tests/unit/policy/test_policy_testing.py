from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import WritePolicies

from gateway.errors import PolicyError
from gateway.policy import format_results, load_policies, run_policy_tests
from gateway.policy.testing import uncovered_rules

SHIPPED = Path(__file__).resolve().parents[3] / "policies"

CASES = """\
cases:
  - name: good score approves
    application: credit
    input: {amount: 1000}
    output: {score: 0.9}
    expect: {tier: limited, action: approve, rule: "route[0]"}
  - name: wrongly expects approval
    application: credit
    input: {amount: 1000}
    output: {score: 0.5}
    expect: {action: approve}
"""


def _write_cases(directory: Path, text: str, name: str = "credit.yaml") -> None:
    (directory / "tests").mkdir(exist_ok=True)
    (directory / "tests" / name).write_text(text)


def test_shipped_policy_tests_pass_and_cover_every_rule() -> None:
    """Every shipped policy test passes, and together they exercise every rule."""
    policies = load_policies(SHIPPED)
    results = run_policy_tests(SHIPPED, policies)
    assert results
    failed = [f"{r.file}:{r.line} {r.name}: {r.message}" for r in results if not r.passed]
    assert failed == []
    assert uncovered_rules(policies, results) == []
    assert {r.application for r in results} == set(policies.applications)


def test_failing_case_is_reported_clearly(write_policies: WritePolicies) -> None:
    """A case whose expectation does not hold fails with expected and actual outcome."""
    directory = write_policies()
    _write_cases(directory, CASES)
    results = run_policy_tests(directory)
    assert [r.passed for r in results] == [True, False]
    failure = results[1]
    assert (failure.file, failure.line, failure.name) == (
        "tests/credit.yaml",
        7,
        "wrongly expects approval",
    )
    assert "expected action 'approve', got 'review'" in failure.message
    assert "rule=route[2]" in failure.message
    report = format_results(results)
    assert "FAIL tests/credit.yaml:7 wrongly expects approval: expected action" in report
    assert "PASS tests/credit.yaml:2 good score approves" in report
    assert report.endswith("1 passed, 1 failed\n")


def test_format_results_lists_uncovered_rules(write_policies: WritePolicies) -> None:
    """Given the policies, the report names the rules no passing case exercised."""
    directory = write_policies()
    _write_cases(directory, CASES)
    policies = load_policies(directory)
    report = format_results(run_policy_tests(directory, policies), policies)
    assert "credit:escalate[0]" in report
    assert "credit:route[1]" in report
    assert "credit:route[0]" not in report


def test_prohibited_tier_rejects_without_output(write_policies: WritePolicies) -> None:
    """A request classified into a reject tier is rejected by rule tier:<name>, with no output."""
    apps = """\
applications:
  - id: offer
    tier: minimal
    backend: scorer
    escalate:
      - {when: "input.age < 18", tier: prohibited, reason: minor}
"""
    directory = write_policies(applications=apps)
    _write_cases(
        directory,
        """\
cases:
  - name: minor
    application: offer
    input: {age: 12}
    expect: {tier: prohibited, action: reject, rule: "tier:prohibited", reason: minor}
  - name: adult needs an output
    application: offer
    input: {age: 30}
    expect: {action: approve}
""",
    )
    results = run_policy_tests(directory)
    assert results[0].passed, results[0].message
    assert not results[1].passed
    assert "needs an output" in results[1].message


def test_expected_evaluation_error(write_policies: WritePolicies) -> None:
    """expect.error passes when evaluation fails with that text, and fails when it does not."""
    directory = write_policies()
    _write_cases(
        directory,
        """\
cases:
  - name: missing amount fails closed
    application: credit
    input: {}
    output: {score: 0.9}
    expect: {error: "escalate[0]"}
  - name: no error happens
    application: credit
    input: {amount: 1}
    output: {score: 0.9}
    expect: {error: "escalate[0]"}
  - name: unexpected error
    application: credit
    input: {amount: 1}
    output: {}
    expect: {action: review}
""",
    )
    results = run_policy_tests(directory)
    assert [r.passed for r in results] == [True, False, False]
    assert "expected an evaluation error" in results[1].message
    assert "policy evaluation failed: route[0]" in results[2].message


def test_unknown_application_fails_the_case(write_policies: WritePolicies) -> None:
    """A case naming an unknown application fails with that reason."""
    directory = write_policies()
    _write_cases(directory, CASES.replace("application: credit", "application: nope", 1))
    results = run_policy_tests(directory)
    assert not results[0].passed
    assert "unknown application 'nope'" in results[0].message


def test_malformed_test_file_names_file_and_line(write_policies: WritePolicies) -> None:
    """An unknown key in a test file raises PolicyError with the test file's name and line."""
    directory = write_policies()
    _write_cases(directory, CASES.replace("    expect: {action: approve}", "    expekt: {}"))
    with pytest.raises(PolicyError) as caught:
        run_policy_tests(directory)
    assert caught.value.location == "tests/credit.yaml:11"
    assert caught.value.field == "cases[1].expekt"


def test_empty_expectation_is_refused(write_policies: WritePolicies) -> None:
    """A case that expects nothing is a test-file error."""
    directory = write_policies()
    _write_cases(directory, CASES.replace("{action: approve}", "{}"))
    with pytest.raises(PolicyError) as caught:
        run_policy_tests(directory)
    assert caught.value.location == "tests/credit.yaml:11"
    assert "at least one of" in caught.value.message


def test_yaml_error_in_test_file(write_policies: WritePolicies) -> None:
    """A YAML syntax error in a test file names the test file."""
    directory = write_policies()
    _write_cases(directory, "cases:\n  - {name: x\n")
    with pytest.raises(PolicyError) as caught:
        run_policy_tests(directory)
    assert caught.value.location.startswith("tests/credit.yaml:")


def test_no_tests_directory_means_no_results(write_policies: WritePolicies) -> None:
    """Policies without a tests directory have no cases to run."""
    assert run_policy_tests(write_policies()) == []
