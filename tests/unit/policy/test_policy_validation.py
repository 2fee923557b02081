"""Every way a policy directory can be refused, with the message the admin reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sendguard.errors import PolicyError
from sendguard.policy.load import load_policy

WritePolicy = Callable[..., Path]
ORG = """
[organisation]
internal_domains = ["example.co.jp"]
"""

RULE = """
[[rule]]
id = "hold-lists"
description = "Hold customer lists"
action = "hold"
"""


def _error(directory: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(directory)
    return info.value


# (file text, substrings of the message, rule id, field)
CASES: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "toml-syntax": ("[[rule]\nid = 1", ("invalid TOML", "line 1"), "", ""),
    "unknown-top-level": (
        "[organisaton]\n",
        ("field organisaton", "unknown key 'organisaton'", "allowed keys: organisation, settings"),
        "",
        "organisaton",
    ),
    "unknown-rule-key": (
        RULE + 'acton = "hold"\n',
        ("rule 'hold-lists' field acton", "unknown key 'acton'", "allowed keys: id, description"),
        "hold-lists",
        "acton",
    ),
    "unknown-org-key": (
        '[organisation]\ninternal_domain = ["example.co.jp"]\n',
        ("field organisation.internal_domain", "allowed keys: internal_domains"),
        "",
        "organisation.internal_domain",
    ),
    "unknown-group-key": (
        '[organisation.groups.sales]\naddress = ["a@example.co.jp"]\n',
        ("organisation.groups.sales.address", "allowed keys: description, addresses, domains"),
        "",
        "organisation.groups.sales.address",
    ),
    "unknown-condition-key": (
        RULE + 'when.any = [{ detector = "personal-data", count = 3 }]\n',
        ("field when.any[0].count", "allowed keys: detector, code, count_at_least"),
        "hold-lists",
        "when.any[0].count",
    ),
    "unknown-group-condition-key": (
        RULE + 'when.either = [{ detector = "personal-data" }]\n',
        ("field when.either", "allowed keys: all, any, none"),
        "hold-lists",
        "when.either",
    ),
    "bad-id": (
        RULE.replace("hold-lists", "Hold_Lists"),
        ("rule 'Hold_Lists' field id", "must be kebab-case", "got 'Hold_Lists'"),
        "Hold_Lists",
        "id",
    ),
    "missing-action": (
        '[[rule]]\nid = "r"\ndescription = "d"\n',
        ("rule 'r' field action: is required",),
        "r",
        "action",
    ),
    "missing-description": (
        '[[rule]]\nid = "r"\naction = "tag"\n',
        ("rule 'r' field description: is required",),
        "r",
        "description",
    ),
    "bad-action": (
        RULE.replace('"hold"', '"quarantine"'),
        ("field action", "'pass', 'tag', 'rewrite-bcc', 'delay', 'hold' or 'reject'", "quarantine"),
        "hold-lists",
        "action",
    ),
    "bad-mode": (
        RULE + 'mode = "audit"\n',
        ("field mode", "'enforce' or 'warn'", "got 'audit'"),
        "hold-lists",
        "mode",
    ),
    "bad-recipients": (
        RULE + 'recipients = "external"\n',
        ("field recipients", "'any-external'", "'all-internal'"),
        "hold-lists",
        "recipients",
    ),
    "count-zero": (
        RULE + 'when.all = [{ detector = "personal-data", count_at_least = 0 }]\n',
        ("field when.all[0].count_at_least", "greater than or equal to 1", "got 0"),
        "hold-lists",
        "when.all[0].count_at_least",
    ),
    "bad-severity": (
        RULE + 'when.all = [{ detector = "personal-data", severity_at_least = "severe" }]\n',
        ("when.all[0].severity_at_least", "'info', 'low', 'medium', 'high' or 'critical'"),
        "hold-lists",
        "when.all[0].severity_at_least",
    ),
    "bad-where": (
        RULE + 'when.all = [{ detector = "personal-data", where = "attachments" }]\n',
        ("when.all[0].where", "'anywhere', 'body' or 'attachment'"),
        "hold-lists",
        "when.all[0].where",
    ),
    "empty-group": (
        RULE + "when.all = [{ any = [] }]\n",
        ("when.all[0]", "needs at least one of all, any, none"),
        "hold-lists",
        "when.all[0]",
    ),
    "param-wrong-action": (
        RULE + "delay_minutes = 5\n",
        (
            "rule 'hold-lists' top level",
            "delay_minutes does not apply to action 'hold'",
            "parameters for 'hold': approvals, escalate_hours, escalate_to, expire_hours",
        ),
        "hold-lists",
        "",
    ),
    "reason-not-ascii": (
        RULE + 'reason = "顧客リスト"\n',
        ("field reason", "printable ASCII"),
        "hold-lists",
        "reason",
    ),
    "reason-newline": (
        RULE + 'reason = "a\\r\\n250 OK"\n',
        ("field reason", "printable ASCII on one line"),
        "hold-lists",
        "reason",
    ),
    "bad-domain": (
        '[organisation]\ninternal_domains = ["example"]\n',
        ("organisation.internal_domains[0]", "not a valid domain name"),
        "",
        "organisation.internal_domains[0]",
    ),
    "bad-reviewer": (
        RULE + 'reviewers = ["boss"]\n',
        ("field reviewers[0]", "'boss' is not a mail address"),
        "hold-lists",
        "reviewers[0]",
    ),
    "bad-group-name": (
        '[organisation.groups."Sales Team"]\naddresses = []\n',
        ("organisation.groups", "group name 'Sales Team'"),
        "",
        "organisation.groups",
    ),
    "unknown-settings-key": (
        "[settings]\nsoft_rejects = true\n",
        ("settings.soft_rejects", "allowed keys: soft_reject, rewrite, delay_minutes"),
        "",
        "settings.soft_rejects",
    ),
    "bad-rewrite-default": (
        '[settings]\nrewrite = "bcc"\n',
        ("settings.rewrite", "'undisclosed', 'sender' or 'split'"),
        "",
        "settings.rewrite",
    ),
    "delay-too-long": (
        '[[rule]]\nid = "d"\ndescription = "d"\naction = "delay"\ndelay_minutes = 2000\n',
        ("field delay_minutes", "less than or equal to 1440"),
        "d",
        "delay_minutes",
    ),
    "approvals-zero": (
        RULE + "approvals = 0\n",
        ("field approvals", "greater than or equal to 1"),
        "hold-lists",
        "approvals",
    ),
    "string-for-list": (
        '[organisation]\ninternal_domains = "example.co.jp"\n',
        ("field organisation.internal_domains", 'a list such as ["a", "b"]'),
        "",
        "organisation.internal_domains",
    ),
    "string-for-bool": (
        RULE + 'self_release = "yes"\n',
        ("field self_release", "Input should be true or false (got 'yes')"),
        "hold-lists",
        "self_release",
    ),
    "string-for-int": (
        RULE + 'approvals = "2"\n',
        ("field approvals", "valid integer (got '2')"),
        "hold-lists",
        "approvals",
    ),
    "when-not-a-table": (
        RULE + "when = [1]\n",
        ("field when", "a table such as { any = [...] }"),
        "hold-lists",
        "when",
    ),
    "unknown-sender-group": (
        ORG + RULE + 'senders = ["sales"]\n',
        ("rule 'hold-lists' field senders[0]", "unknown sender group 'sales'", "none defined"),
        "hold-lists",
        "senders[0]",
    ),
    "unknown-detector": (
        RULE + 'when.any = [{ detector = "personal-info" }]\n',
        ("field when.any[0].detector", "unknown detector 'personal-info'", "personal-data"),
        "hold-lists",
        "when.any[0].detector",
    ),
    "unknown-code": (
        RULE + 'when.any = [{ all = [{ detector = "personal-data", code = "mynumber" }] }]\n',
        ("when.any[0].all[0].code", "no finding code 'mynumber'", "my-number"),
        "hold-lists",
        "when.any[0].all[0].code",
    ),
    "unknown-param": (
        RULE + 'when.any = [{ detector = "visible-recipients", params_at_least = {orgs = 3} }]\n',
        (
            "when.any[0].params_at_least.orgs",
            "no numeric parameter 'orgs'",
            "its numeric parameters: count, domains, in_envelope, organisations",
        ),
        "hold-lists",
        "when.any[0].params_at_least.orgs",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_policy_names_file_rule_field_and_what_is_allowed(
    case: str, write_policy: WritePolicy
) -> None:
    """Each invalid policy is refused with a message naming file, rule, field and the fix."""
    text, expected, rule, field = CASES[case]
    directory = write_policy(main=text)
    error = _error(directory)
    message = str(error)
    assert message.startswith(str(directory / "main.toml"))
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert (error.file, error.rule, error.field) == (str(directory / "main.toml"), rule, field)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    """A policy directory that does not exist is an error naming it."""
    error = _error(tmp_path / "nope")
    assert str(error) == f"{tmp_path / 'nope'}: policy directory does not exist"


def test_directory_without_toml_files_is_refused(tmp_path: Path) -> None:
    """An empty policy directory would pass everything silently, so it is refused."""
    assert "no policy files (*.toml) found" in str(_error(tmp_path))


def test_file_that_is_not_utf8_is_refused(write_policy: WritePolicy) -> None:
    """A Shift_JIS-saved policy file is refused with the byte offset."""
    directory = write_policy()
    (directory / "sjis.toml").write_bytes("# 社外秘\n".encode("cp932"))
    assert "not UTF-8 text (byte 2)" in str(_error(directory))


def test_several_errors_are_all_listed(write_policy: WritePolicy) -> None:
    """All validation errors of a file are reported at once, one per line."""
    directory = write_policy(main=RULE + 'mode = "x"\nfoo = 1\n')
    lines = str(_error(directory)).splitlines()
    assert len(lines) == 2
    assert "field mode" in lines[0]
    assert "unknown key 'foo'" in lines[1]


def test_duplicate_rule_id_across_files_names_both_files(write_policy: WritePolicy) -> None:
    """Rule ids are unique across files; the error names where the first one is."""
    directory = write_policy(a=RULE, b=RULE)
    error = _error(directory)
    assert str(error) == (
        f"{directory / 'b.toml'}: rule 'hold-lists' field id: already defined in "
        f"{directory / 'a.toml'}; rule ids must be unique across all policy files"
    )
    assert (error.rule, error.field) == ("hold-lists", "id")


def test_settings_in_two_files_is_refused(write_policy: WritePolicy) -> None:
    """Only one file may hold [settings], so there is no question which one wins."""
    directory = write_policy(a="[settings]\n", b="[settings]\nsoft_reject = true\n")
    assert f"[settings] already given in {directory / 'a.toml'}" in str(_error(directory))


def test_group_defined_twice_is_refused(write_policy: WritePolicy) -> None:
    """A sender group defined in two files is refused rather than merged."""
    group = '[organisation.groups.sales]\ndomains = ["sales.example.co.jp"]\n'
    directory = write_policy(a=group, b=group)
    assert "[organisation.groups.sales] already defined in" in str(_error(directory))


def test_missing_list_file_is_refused(write_policy: WritePolicy) -> None:
    """A group's list file that cannot be read is named with the group and the fix."""
    directory = write_policy(a='[organisation.groups.sales]\nlist_file = "sales.txt"\n')
    error = _error(directory)
    assert "[organisation.groups.sales] field list_file: cannot read" in str(error)
    assert "one a line, relative to the policy directory" in str(error)
    assert error.field == "organisation.groups.sales.list_file"


def test_bad_line_in_list_file_names_the_line(write_policy: WritePolicy) -> None:
    """A list file line that is not an address is reported as file:line."""
    directory = write_policy(a='[organisation.groups.sales]\nlist_file = "sales.txt"\n')
    (directory / "sales.txt").write_text("# sales\ntanaka@example.co.jp\nsuzuki\n")
    assert f"{directory / 'sales.txt'}:3: 'suzuki' is not a mail address" in str(_error(directory))


def test_unknown_detector_settings_table_lists_known_detectors(write_policy: WritePolicy) -> None:
    """[detectors.<id>] with an unknown id is refused with the known ids."""
    directory = write_policy(a="[detectors.personal-info]\nx = 1\n")
    error = _error(directory)
    assert "unknown detector 'personal-info'; known detectors: external-recipients" in str(error)
    assert error.field == "detectors.personal-info"


def test_unknown_detector_setting_key_is_refused(write_policy: WritePolicy) -> None:
    """A typo inside [detectors.<id>] is refused by the detector's own settings model."""
    directory = write_policy(a="[detectors.confidential-marker]\nkeywrods = []\n")
    error = _error(directory)
    assert "[detectors.confidential-marker] field keywrods: unknown key 'keywrods'" in str(error)
    assert "allowed keys:" in str(error)


def test_detector_configured_in_two_files_is_refused(write_policy: WritePolicy) -> None:
    """Each detector is configured in one file only."""
    directory = write_policy(
        a="[detectors.confidential-marker]\n", b="[detectors.confidential-marker]\n"
    )
    assert "[detectors.confidential-marker] already given in" in str(_error(directory))


def test_complete_example_in_docs_is_valid(tmp_path: Path) -> None:
    """The complete example in docs/policy.md loads, so the documentation cannot rot."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "policy.md").read_text(encoding="utf-8")
    example = doc.split("## A complete example", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    (tmp_path / "example.toml").write_text(example, encoding="utf-8")
    loaded = load_policy(tmp_path)
    assert [r.id for r in loaded.policy.rules] == [
        "bcc-many-external-visible",
        "hold-customer-list-external",
        "delay-external",
    ]


def test_bad_detector_setting_value_names_the_field(write_policy: WritePolicy) -> None:
    """A wrongly typed detector setting names the detector, the field and the expected type."""
    directory = write_policy(a='[detectors.personal-data]\nmin_records = "many"\n')
    error = _error(directory)
    assert f"{directory / 'a.toml'}: [detectors.personal-data] field min_records:" in str(error)
    assert "valid integer" in str(error)
    assert "(got 'many')" in str(error)
    assert error.field == "detectors.personal-data.min_records"


def test_rule_on_a_disabled_detector_is_refused(write_policy: WritePolicy) -> None:
    """A condition on a detector switched off could never hold, so the policy is refused."""
    directory = write_policy(
        a="[detectors.lookalike-domain]\nenabled = false\n"
        + RULE
        + 'when.any = [{ detector = "lookalike-domain" }]\n'
    )
    error = _error(directory)
    assert (
        "rule 'hold-lists' field when.any[0].detector: detector 'lookalike-domain' is disabled"
        in str(error)
    )
    assert "enable it or remove the condition" in str(error)


def test_detector_enabled_must_be_a_boolean(write_policy: WritePolicy) -> None:
    """`enabled` in a detector table takes true or false only."""
    directory = write_policy(a='[detectors.lookalike-domain]\nenabled = "no"\n')
    error = _error(directory)
    assert (
        "[detectors.lookalike-domain] field enabled: Input should be true or false (got 'no')"
        in str(error)
    )
    assert error.field == "detectors.lookalike-domain.enabled"


def test_disabled_detector_is_recorded(write_policy: WritePolicy) -> None:
    """A disabled detector is left out of the detectors the policy runs."""
    loaded = load_policy(
        write_policy(a="allow_empty = true\n[detectors.unresolvable-domain]\nenabled = false\n")
    )
    assert loaded.disabled_detectors == frozenset({"unresolvable-domain"})
    assert "unresolvable-domain" not in loaded.enabled_detectors()
    assert "lookalike-domain" in loaded.enabled_detectors()
