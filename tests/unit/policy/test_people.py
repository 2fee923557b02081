"""``[people]``: which addresses a login may send as, its own address, its role."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendguard.errors import PolicyError
from sendguard.model import Envelope
from sendguard.policy.load import load_policy
from sendguard.policy.people import People, build_people

# No rules: these policies only describe people (`allow_empty` says that is deliberate).
ORG = 'allow_empty = true\n[organisation]\ninternal_domains = ["example.co.jp", "example.com"]\n'


def _people(tmp_path: Path, text: str) -> People:
    (tmp_path / "p.toml").write_text(ORG + text, "utf-8")
    return load_policy(tmp_path).people


def test_listed_login_may_use_its_addresses_and_wildcards(tmp_path: Path) -> None:
    people = _people(
        tmp_path,
        '[people.tanaka]\naddresses = ["Tanaka@Example.co.jp", "@eigyo.example.co.jp"]\n'
        'role = "reviewer"\n',
    )
    tanaka = people.person("TANAKA")
    assert tanaka.listed and tanaka.role == "reviewer"
    assert tanaka.own_address == "tanaka@example.co.jp"
    assert people.may_send_as("tanaka", "tanaka@example.co.jp")
    assert people.may_send_as("tanaka", "Info@eigyo.example.co.jp")
    assert not people.may_send_as("tanaka", "shacho@example.co.jp")
    assert not people.may_send_as("tanaka", "x@sub.eigyo.example.co.jp")
    assert not people.may_send_as("tanaka", "")


def test_unlisted_bare_login_sends_as_itself_at_each_internal_domain(tmp_path: Path) -> None:
    people = _people(tmp_path, "")
    sato = people.person("sato")
    assert not sato.listed and sato.role == "sender"
    assert sato.addresses == ("sato@example.co.jp", "sato@example.com")
    assert people.may_send_as("sato", "sato@example.com")
    assert not people.may_send_as("sato", "shacho@example.co.jp")


def test_unlisted_address_login_sends_as_exactly_itself() -> None:
    people = build_people({}, ("example.co.jp",))
    assert people.may_send_as("Tanaka@Example.co.jp", "tanaka@example.co.jp")
    assert not people.may_send_as("tanaka@example.co.jp", "shacho@example.co.jp")


@pytest.mark.parametrize("login", ["a%b@example.co.jp", "a%b", "x!y", '"a@b"@example.co.jp'])
def test_routing_characters_never_make_a_default_address(login: str) -> None:
    people = build_people({}, ("example.co.jp",))
    assert people.person(login).addresses == ()


def test_own_address_skips_wildcards_and_by_address_finds_the_person(tmp_path: Path) -> None:
    people = _people(
        tmp_path,
        '[people.suzuki]\naddresses = ["@example.com", "security@example.co.jp"]\nrole = "admin"\n',
    )
    assert people.person("suzuki").own_address == "security@example.co.jp"
    assert [p.login for p in people.by_address("SECURITY@example.co.jp")] == ["suzuki"]
    assert people.person("suzuki").addresses_in(["security@example.co.jp"])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[people.tanaka]\naddresses = ["not an address"]\n', "people"),
        ('[people.tanaka]\naddresses = ["a%b@example.co.jp"]\n', "routing"),
        ('[people.tanaka]\nrole = "boss"\n', "role"),
        ('[people."bad login"]\n', "login"),
        ('[people.tanaka]\nadresses = ["t@example.co.jp"]\n', "adresses"),
    ],
)
def test_bad_people_entries_are_refused(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "p.toml").write_text(ORG + text, "utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path)
    assert needle in str(info.value)


def test_a_login_listed_in_two_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(ORG + '[people.tanaka]\nrole = "admin"\n', "utf-8")
    (tmp_path / "b.toml").write_text('[people.Tanaka]\nrole = "sender"\n', "utf-8")
    with pytest.raises(PolicyError, match="already defined"):
        load_policy(tmp_path)


def test_identity_is_the_own_address_and_bind_fills_it_for_logins_only() -> None:
    """The policy and the notices see a login as its own address; mail without AUTH keeps
    its MAIL FROM; a login with only wildcards has no identity (no group, no notice)."""
    people = build_people(
        {
            "hisho": (("hisho@example.co.jp", "shacho@example.co.jp"), "sender"),
            "batch": (("@batch.example.co.jp",), "sender"),
        },
        ("example.co.jp",),
    )
    assert people.identity("HISHO") == "hisho@example.co.jp"
    assert people.identity("sato") == "sato@example.co.jp"
    assert people.identity("batch") == ""
    as_president = Envelope("shacho@example.co.jp", ("a@b.example",), auth_user="hisho")
    assert people.bind(as_president).sender == "hisho@example.co.jp"
    trusted = Envelope("shacho@example.co.jp", ("a@b.example",))
    assert people.bind(trusted) is trusted and trusted.sender == "shacho@example.co.jp"
    assert people.bind(Envelope("j@batch.example.co.jp", (), auth_user="batch")).sender == ""
