"""Encrypted and password-protected attachments are recognised and reported uninspectable."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.support import attachments as build

from .helpers import ROWS, parse_files, part


def _secret_csv() -> bytes:
    return "氏名,電話\n田中,090\n".encode("cp932")


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        ("aes.zip", lambda: build.aes_zip({"顧客.csv": _secret_csv()}), "encrypted-zip"),
        ("ppap.zip", lambda: build.zipcrypto_zip({"顧客.csv": _secret_csv()}), "encrypted-zip"),
        ("a.7z", lambda: build.seven_zip_header(encrypted=True), "encrypted-7z"),
        ("a.rar", lambda: build.rar5(encrypted_headers=True), "encrypted-rar"),
        ("b.rar", lambda: build.rar4(encrypted_file=True), "encrypted-rar"),
        ("顧客.xlsx", lambda: build.encrypt_office(build.xlsx({"s": ROWS})), "encrypted-office"),
        ("報告.docx", lambda: build.encrypt_office(build.docx(["秘密"])), "encrypted-office"),
        ("資料.pdf", lambda: build.pdf(["秘密の資料"], password="pw"), "encrypted-pdf"),
    ],
)
def test_encrypted_container_is_flagged(name: str, make: object, code: str) -> None:
    """Each encryption scheme sets Part.encrypted and an `encrypted` problem with its code."""
    assert callable(make)
    mail = parse_files({name: make()})
    found = part(mail, "attachment 1")
    assert found.encrypted
    assert found.problem == code
    assert [(p.kind, p.code, p.where) for p in mail.problems] == [
        ("encrypted", code, "attachment 1")
    ]
    assert "田中" not in found.text


def test_zipcrypto_builder_is_a_real_zip() -> None:
    """The ZipCrypto fixture opens with the stdlib and the password, so detection is real."""
    archive = zipfile.ZipFile(io.BytesIO(build.zipcrypto_zip({"a.txt": b"hello"})))
    archive.setpassword(b"secret")
    assert archive.read("a.txt") == b"hello"


def test_encrypted_zip_members_are_listed() -> None:
    """Members of an encrypted ZIP appear as encrypted parts with their names."""
    mail = parse_files({"顧客.zip": build.aes_zip({"list/顧客.csv": _secret_csv()})})
    member = part(mail, "attachment 1 › 顧客.zip › list/顧客.csv")
    assert member.encrypted
    assert member.problem == "encrypted-zip"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.rar", build.rar5(encrypted_headers=False)),
        ("b.rar", build.rar4(encrypted_file=False)),
    ],
)
def test_unencrypted_rar_is_unsupported_not_clean(name: str, data: bytes) -> None:
    """RAR without encryption cannot be read here: `unsupported`, never silent."""
    mail = parse_files({name: data})
    found = part(mail, "attachment 1")
    assert not found.encrypted
    assert [(p.kind, p.code) for p in mail.problems] == [("unsupported", "unsupported-archive")]


def test_unencrypted_7z_header_without_content_is_malformed_not_clean() -> None:
    """Issue 13: 7z is now read; a bare hand-written header has no members → malformed."""
    mail = parse_files({"a.7z": build.seven_zip_header(encrypted=False)})
    assert not part(mail, "attachment 1").encrypted
    assert [(p.kind, p.code) for p in mail.problems] == [("malformed", "bad-7z")]


def test_owner_password_only_pdf_is_read() -> None:
    """A PDF restricted by an owner password only opens with the empty password and is read."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(build.pdf(["閲覧できる資料"]))))
    writer.encrypt(user_password="", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    found = part(parse_files({"資料.pdf": out.getvalue()}), "attachment 1")
    assert not found.encrypted
    assert "閲覧できる資料" in found.text
