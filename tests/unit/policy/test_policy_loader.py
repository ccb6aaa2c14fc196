from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import APPLICATIONS, BACKENDS, TIERS, WritePolicies

from gateway.errors import PolicyError
from gateway.policy import load_policies


def _error(directory: Path) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_policies(directory)
    return caught.value


def test_valid_policies_load(write_policies: WritePolicies) -> None:
    """A consistent set of files loads into tiers ranked by order, backends and applications."""
    policies = load_policies(write_policies())
    assert [t.name for t in policies.tiers] == ["prohibited", "high", "limited", "minimal"]
    assert [t.rank for t in policies.tiers] == [0, 1, 2, 3]
    high = policies.tier("high")
    assert high.approvals == 2
    assert high.groups == ("senior",)
    assert high.sla is not None
    assert high.sla.total_seconds() == 4 * 3600
    assert high.on_timeout == "reject"
    assert high.require_approved_model
    assert policies.tier("prohibited").reject
    minimal = policies.tier("minimal")
    assert (minimal.approvals, minimal.groups, minimal.sla) == (1, ("reviewers",), None)
    backend = policies.backends["scorer"]
    assert backend.timeout == 2.0
    assert backend.version == "3"
    assert high.require_explanation is False
    assert policies.application("credit").base_tier is policies.tier("limited")


def test_version_is_a_digest_of_the_files(write_policies: WritePolicies) -> None:
    """The policy version is a sha256 over the files and changes when any file changes."""
    directory = write_policies()
    first = load_policies(directory).version
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 64
    assert load_policies(directory).version == first
    (directory / "backends.yaml").write_text(BACKENDS + "# a comment\n")
    assert load_policies(directory).version != first


def test_unknown_key_names_file_line_and_field(write_policies: WritePolicies) -> None:
    """An unknown key is refused with its file, line and dotted path."""
    error = _error(write_policies(applications=APPLICATIONS.replace("    route:", "    rout:")))
    assert error.location == "applications.yaml:7"
    assert error.field == "applications[0].rout"
    assert "unknown key 'rout'" in error.message


def test_cel_typo_variable_is_refused(write_policies: WritePolicies) -> None:
    """A condition referring to an undeclared variable names the rule's when field and column."""
    text = APPLICATIONS.replace('"output.score < 0.2"', '"ouput.score < 0.2"')
    error = _error(write_policies(applications=text))
    assert error.location == "applications.yaml:9"
    assert error.field == "applications[0].route[1].when"
    assert "undeclared reference to 'ouput.score'" in error.message
    assert "column" in error.message


def test_cel_syntax_error_is_refused(write_policies: WritePolicies) -> None:
    """A CEL syntax error is refused at load with the rule's location."""
    text = APPLICATIONS.replace('"output.score >= 0.8"', '"output.score >="')
    error = _error(write_policies(applications=text))
    assert (error.location, error.field) == ("applications.yaml:8", "applications[0].route[0].when")
    assert "Syntax error" in error.message
    assert "\n" not in error.message


def test_non_bool_condition_is_refused(write_policies: WritePolicies) -> None:
    """A condition whose type is known not to be bool is refused at load."""
    text = APPLICATIONS.replace('"input.amount > 100000"', '"input.amount + 1"')
    error = _error(write_policies(applications=text))
    assert (error.location, error.field) == (
        "applications.yaml:6",
        "applications[0].escalate[0].when",
    )
    assert "must be a bool" in error.message


def test_escalation_cannot_use_output(write_policies: WritePolicies) -> None:
    """Escalation runs before the model, so a reference to output is a load error."""
    text = APPLICATIONS.replace('"input.amount > 100000"', '"output.score > 0.5"')
    error = _error(write_policies(applications=text))
    assert error.field == "applications[0].escalate[0].when"
    assert "output is not available" in error.message


def test_unknown_tier_is_refused(write_policies: WritePolicies) -> None:
    """An application naming a tier that does not exist is refused."""
    error = _error(write_policies(applications=APPLICATIONS.replace("tier: limited", "tier: low")))
    assert (error.location, error.field) == ("applications.yaml:3", "applications[0].tier")
    assert "unknown tier 'low'" in error.message


def test_unknown_escalation_tier_is_refused(write_policies: WritePolicies) -> None:
    """An escalation rule naming a tier that does not exist is refused."""
    error = _error(write_policies(applications=APPLICATIONS.replace("tier: high", "tier: hihg")))
    assert (error.location, error.field) == (
        "applications.yaml:6",
        "applications[0].escalate[0].tier",
    )


def test_escalation_to_lower_risk_is_refused(write_policies: WritePolicies) -> None:
    """An escalation rule that would lower the tier is refused: escalation only raises."""
    error = _error(write_policies(applications=APPLICATIONS.replace("tier: high", "tier: minimal")))
    assert error.field == "applications[0].escalate[0].tier"
    assert "can only raise" in error.message


def test_unknown_backend_is_refused(write_policies: WritePolicies) -> None:
    """An application naming a backend that does not exist is refused."""
    error = _error(
        write_policies(applications=APPLICATIONS.replace("backend: scorer", "backend: x"))
    )
    assert (error.location, error.field) == ("applications.yaml:4", "applications[0].backend")
    assert "unknown backend 'x'" in error.message


def test_validation_key_is_refused_and_points_to_the_inventory(
    write_policies: WritePolicies,
) -> None:
    """A backend that still states ``validation:`` is refused at that line, naming the inventory."""
    text = BACKENDS.replace('version: "1"}', 'version: "1", validation: approved}')
    error = _error(write_policies(backends=text))
    assert (error.location, error.field) == ("backends.yaml:3", "backends[1].validation")
    assert "moved to the model inventory" in error.message
    assert "hitl-gateway models register" in error.message


def test_validation_key_on_its_own_line_is_refused_there(write_policies: WritePolicies) -> None:
    """A block-style backend's ``validation:`` line is the one named."""
    text = """\
backends:
  - name: scorer
    kind: builtin
    model: credit_v3
    version: "3"
    validation: pending
  - {name: draft, kind: builtin, model: offer_v1, version: "1"}
"""
    error = _error(write_policies(backends=text))
    assert (error.location, error.field) == ("backends.yaml:6", "backends[0].validation")


def test_backend_without_version_is_refused(write_policies: WritePolicies) -> None:
    """Every backend names the model version it uses; an empty one is refused too."""
    error = _error(write_policies(backends=BACKENDS.replace(', version: "3"', "")))
    assert error.field == "backends[0].version"
    error = _error(write_policies(backends=BACKENDS.replace('"3"', '" "')))
    assert error.field == "backends[0].version"


def test_require_approved_model_false_is_refused(write_policies: WritePolicies) -> None:
    """``require_approved_model: false`` cannot lift the inventory's check, so it is refused."""
    text = TIERS.replace("require_approved_model: true", "require_approved_model: false")
    error = _error(write_policies(tiers=text))
    assert (error.location, error.field) == ("tiers.yaml:4", "tiers[1].require_approved_model")
    assert "model inventory" in error.message


def test_require_explanation_is_read_per_tier(write_policies: WritePolicies) -> None:
    """``require_explanation: true`` on a tier reaches its TierSpec; other tiers keep False."""
    text = TIERS.replace("require_approved_model: true", "require_explanation: true")
    policies = load_policies(write_policies(tiers=text))
    assert policies.tier("high").require_explanation is True
    assert policies.tier("limited").require_explanation is False


def test_duplicate_tier_name_is_refused(write_policies: WritePolicies) -> None:
    """Two tiers with one name are refused at the second one."""
    error = _error(write_policies(tiers=TIERS + "  - {name: high}\n"))
    assert (error.location, error.field) == ("tiers.yaml:9", "tiers[4].name")
    assert "more than once" in error.message


def test_duplicate_application_across_files_is_refused(write_policies: WritePolicies) -> None:
    """An application id defined in two files is refused in the later file, at its own index."""
    error = _error(write_policies(more=APPLICATIONS))
    assert (error.location, error.field) == ("more.yaml:2", "applications[0].id")
    assert "'credit' is defined more than once" in error.message


def test_duplicate_yaml_key_is_refused(write_policies: WritePolicies) -> None:
    """A key repeated in one mapping is an error, not silently overwritten."""
    error = _error(write_policies(applications=APPLICATIONS + "    tier: high\n"))
    assert (error.location, error.field) == ("applications.yaml:11", "applications[0].tier")
    assert "duplicate key" in error.message


def test_yaml_syntax_error_names_file_and_line(write_policies: WritePolicies) -> None:
    """A YAML syntax error names the file and the line of the problem."""
    error = _error(write_policies(backends=BACKENDS + "  - {name: broken\n"))
    assert error.location.startswith("backends.yaml:")
    assert int(error.location.split(":")[1]) >= 4
    assert "YAML syntax error" in error.message


def test_bad_duration_is_refused(write_policies: WritePolicies) -> None:
    """A duration without a valid unit names the field and shows the expected form."""
    error = _error(write_policies(tiers=TIERS.replace("sla: 4h", "sla: 4 hours")))
    assert (error.location, error.field) == ("tiers.yaml:5", "tiers[1].review.sla")
    assert "invalid duration '4 hours'" in error.message


def test_bad_backend_timeout_is_refused(write_policies: WritePolicies) -> None:
    """A backend timeout is a duration too."""
    text = BACKENDS.replace('version: "3"}', 'version: "3", timeout: 2}')
    error = _error(write_policies(backends=text))
    assert (error.location, error.field) == ("backends.yaml:2", "backends[0].timeout")


def test_unknown_backend_kind_and_missing_target(write_policies: WritePolicies) -> None:
    """Backend kind must be builtin or oip, and an oip backend needs a target."""
    error = _error(write_policies(backends=BACKENDS.replace("kind: builtin", "kind: http", 1)))
    assert error.field == "backends[0].kind"
    error = _error(write_policies(backends=BACKENDS.replace("kind: builtin", "kind: oip", 1)))
    assert error.field == "backends[0].target"
    assert "needs a target" in error.message


def test_sample_rate_must_be_a_fraction(write_policies: WritePolicies) -> None:
    """sample_for_review outside [0, 1] is refused."""
    text = APPLICATIONS + "    sample_for_review: 1.5\n"
    error = _error(write_policies(applications=text))
    assert (error.location, error.field) == (
        "applications.yaml:11",
        "applications[0].sample_for_review",
    )


def test_missing_key_points_at_the_item(write_policies: WritePolicies) -> None:
    """A missing required key is reported at the item that lacks it."""
    error = _error(write_policies(applications=APPLICATIONS.replace("    backend: scorer\n", "")))
    assert (error.location, error.field) == ("applications.yaml:2", "applications[0].backend")
    assert "missing required key 'backend'" in error.message


def test_first_error_in_file_order_is_reported(write_policies: WritePolicies) -> None:
    """Of several problems in a file, the earliest line is reported."""
    text = APPLICATIONS.replace("tier: limited", "tier: limited\n    bogus: 1").replace(
        "sample", "x"
    )
    text = text.replace("action: reject", "action: maybe")
    error = _error(write_policies(applications=text))
    assert (error.location, error.field) == ("applications.yaml:4", "applications[0].bogus")


def test_tiers_must_be_in_one_file(write_policies: WritePolicies) -> None:
    """Tiers split over several files are refused, because their order is the ranking."""
    error = _error(write_policies(x_tiers="tiers:\n  - {name: other}\n"))
    assert (error.location, error.field) == ("x_tiers.yaml:1", "tiers")


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    """A directory without policy files is an error."""
    error = _error(tmp_path)
    assert "no policy files" in error.message


def test_no_applications_is_refused(write_policies: WritePolicies) -> None:
    """Policies without any application are an error."""
    error = _error(write_policies(applications=""))
    assert error.field == "applications"
    assert "no applications" in error.message


def test_file_must_be_a_mapping(write_policies: WritePolicies) -> None:
    """A file that is not a mapping of sections is refused."""
    error = _error(write_policies(extra="- just a list\n"))
    assert error.location == "extra.yaml:1"


def test_sections_may_be_in_any_file(tmp_path: Path) -> None:
    """All three sections may share one file; the tests directory is not read as policies."""
    directory = tmp_path / "p"
    (directory / "tests").mkdir(parents=True)
    (directory / "all.yaml").write_text(TIERS + BACKENDS + APPLICATIONS)
    (directory / "tests" / "cases.yaml").write_text("not: policies\n")
    assert list(load_policies(directory).applications) == ["credit"]


def test_merge_keys_are_supported(write_policies: WritePolicies) -> None:
    """YAML anchors and merge keys work, and a mapping's own keys override merged ones."""
    text = """\
backends:
  - &base {name: base, kind: builtin, model: m, version: "1"}
  - {<<: *base, name: scorer}
  - {<<: *base, name: draft, version: "2"}
"""
    policies = load_policies(write_policies(backends=text))
    assert policies.backends["draft"].version == "2"
    assert policies.backends["scorer"].model == "m"


def test_approve_on_timeout_is_refused_on_a_four_eyes_tier(write_policies: WritePolicies) -> None:
    """on_timeout: approve on a two-approval tier names file, line and field, even if allowed."""
    tiers = TIERS.replace(
        "sla: 4h, on_timeout: reject}",
        "sla: 4h, on_timeout: approve, allow_approve_on_timeout: true}",
    )
    error = _error(write_policies(tiers=tiers))
    assert (error.location, error.field) == ("tiers.yaml:5", "tiers[1].review.on_timeout")
    assert "2 people" in error.message


def test_approve_on_timeout_needs_to_be_stated(write_policies: WritePolicies) -> None:
    """on_timeout: approve on a one-approval tier is refused unless the tier allows it."""
    tiers = TIERS.replace("sla: 1h, on_timeout: escalate}", "sla: 1h, on_timeout: approve}")
    error = _error(write_policies(tiers=tiers))
    assert error.field == "tiers[2].review.on_timeout"
    assert error.location.startswith("tiers.yaml:")
    assert "allow_approve_on_timeout" in error.message
    allowed = tiers.replace(
        "on_timeout: approve}", "on_timeout: approve, allow_approve_on_timeout: true}"
    )
    assert load_policies(write_policies(tiers=allowed)).tier("limited").on_timeout == "approve"


def test_reject_approvals_cannot_exceed_approvals(write_policies: WritePolicies) -> None:
    """reject_approvals above approvals is refused naming the field; unset means approvals."""
    tiers = TIERS.replace("{approvals: 2,", "{approvals: 2, reject_approvals: 3,")
    error = _error(write_policies(tiers=tiers))
    assert error.field == "tiers[1].review.reject_approvals"
    policies = load_policies(write_policies())
    assert policies.tier("high").reject_approvals == 2
    one = TIERS.replace("{approvals: 2,", "{approvals: 2, reject_approvals: 1,")
    assert load_policies(write_policies(tiers=one)).tier("high").reject_approvals == 1
