"""gzip, tar and 7z archives (issue 13): read like ZIP, bounded like ZIP, never passed unread."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from pathlib import Path

import py7zr
import pytest

from sendguard.inspect import inspect_sync
from sendguard.model import Envelope, Mail
from sendguard.parse import ParseLimits
from sendguard.policy.load import load_policy
from tests.support import attachments as build
from tests.unit.parse.helpers import EXPECTED_ROWS, ROWS, parse_files, part

CSV = "\r\n".join(",".join(row) for row in ROWS).encode("cp932")
MiB = 1 << 20
SHIPPED = Path(__file__).resolve().parents[3] / "policies"


def _tar(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _seven_z(members: dict[str, bytes], password: str | None = None, **kw: bool) -> bytes:
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=password, **kw) as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return out.getvalue()


def _gzip_of_zeros(size: int) -> bytes:
    """A gzip stream of *size* zero bytes, built in 1 MiB steps (never held in memory)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(MiB)
    return b"".join(deflater.compress(zero) for _ in range(size // MiB)) + deflater.flush()


def _rows(mail: Mail, label: str) -> tuple[tuple[str, ...], ...]:
    return part(mail, label).tables[0].rows


def test_gzip_shift_jis_csv_is_read_as_a_table() -> None:
    """The issue's case: 顧客.csv.gz in Shift_JIS was `unsupported`; now it is a table."""
    mail = parse_files({"顧客.csv.gz": gzip.compress(CSV)})
    assert _rows(mail, "attachment 1 › 顧客.csv.gz › 顧客.csv") == EXPECTED_ROWS
    assert mail.problems == ()


def test_gzip_inner_name_comes_from_the_header() -> None:
    data = io.BytesIO()
    with gzip.GzipFile("meibo.csv", "wb", fileobj=data, mtime=0) as handle:
        handle.write(CSV)
    mail = parse_files({"download.gz": data.getvalue()})
    assert _rows(mail, "attachment 1 › download.gz › meibo.csv") == EXPECTED_ROWS


def test_tar_gz_members_are_read() -> None:
    mail = parse_files({"顧客.tar.gz": _tar({"list/顧客.csv": CSV, "readme.txt": b"hello"})})
    label = "attachment 1 › 顧客.tar.gz › 顧客.tar › list/顧客.csv"
    assert _rows(mail, label) == EXPECTED_ROWS
    assert part(mail, "attachment 1 › 顧客.tar.gz › 顧客.tar › readme.txt").text == "hello"


def test_plain_tar_is_read_and_links_are_listed_not_followed() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo("顧客.csv")
        info.size = len(CSV)
        archive.addfile(info, io.BytesIO(CSV))
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    mail = parse_files({"a.tar": out.getvalue()})
    assert _rows(mail, "attachment 1 › a.tar › 顧客.csv") == EXPECTED_ROWS
    assert [(p.kind, p.code) for p in mail.problems] == [("unsupported", "tar-special-file")]


def test_7z_members_are_read() -> None:
    mail = parse_files({"顧客.7z": _seven_z({"list/顧客.csv": CSV})})
    assert _rows(mail, "attachment 1 › 顧客.7z › list/顧客.csv") == EXPECTED_ROWS
    assert mail.problems == ()


@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_7z_is_still_encrypted(header_encryption: bool) -> None:
    data = _seven_z({"顧客.csv": CSV}, "secret", header_encryption=header_encryption)
    mail = parse_files({"顧客.7z": data})
    assert part(mail, "attachment 1").encrypted
    assert [(p.kind, p.code) for p in mail.problems] == [("encrypted", "encrypted-7z")]
    assert "田中" not in "".join(p.text for p in mail.parts)


def test_gzip_of_1_gib_of_zeros_is_stopped_at_the_limit() -> None:
    bomb = _gzip_of_zeros(1024 * MiB)
    assert len(bomb) < 2 * MiB
    mail = parse_files({"zeros.gz": bomb})
    assert [(p.kind, p.code) for p in mail.problems] == [("limit", "member-size")]
    assert part(mail, "attachment 1 › zeros.gz › zeros").problem == "member-size"


def test_gzip_ratio_limit_is_the_zip_one() -> None:
    """8 MiB of zeros (ratio ~1000) passes the size limits but not the ratio limit."""
    mail = parse_files({"zeros.gz": _gzip_of_zeros(8 * MiB)})
    assert [(p.kind, p.code) for p in mail.problems] == [("limit", "compression-ratio")]


def test_gzip_total_expansion_is_charged() -> None:
    limits = ParseLimits(max_expanded_bytes=MiB, ratio_min_bytes=100 * MiB)
    mail = parse_files({"a.gz": gzip.compress(bytes(2 * MiB))}, limits)
    assert [(p.kind, p.code) for p in mail.problems] == [("limit", "expanded-size")]


def test_7z_bomb_is_stopped_by_output_not_declared_size() -> None:
    bomb = _seven_z({"zeros.bin": bytes(80 * MiB)})
    assert len(bomb) < MiB
    mail = parse_files({"zeros.7z": bomb})
    assert [(p.kind, p.code) for p in mail.problems] == [("limit", "member-size")]


def test_nested_tar_gz_stops_at_the_archive_depth() -> None:
    data = gzip.compress(CSV)
    for level in range(4):
        data = _tar({f"level{level}.csv.gz" if level == 0 else f"l{level}.tar.gz": data})
    mail = parse_files({"deep.tar.gz": data})
    assert ("limit", "archive-depth") in [(p.kind, p.code) for p in mail.problems]


def test_truncated_gzip_is_malformed() -> None:
    mail = parse_files({"a.csv.gz": gzip.compress(CSV)[:-12]})
    assert [(p.kind, p.code) for p in mail.problems] == [("malformed", "bad-gzip")]


def _verdict(name: str, data: bytes, rcpt: str) -> tuple[str, str]:
    policy = load_policy(SHIPPED)
    message = build.build_message(
        from_=("田中", "tanaka@example.co.jp"),
        to=[("", rcpt)],
        attachments=[build.Attachment(name, data, "application/octet-stream")],
    )
    envelope = Envelope(mail_from="tanaka@example.co.jp", rcpt_tos=(rcpt,))
    inspection = inspect_sync(envelope, message, policy, ParseLimits(), offline=True)
    verdict = inspection.verdict
    return verdict.action.name.lower(), verdict.rule_id or ""


def test_shipped_policy_holds_a_gzipped_customer_list_going_outside() -> None:
    customers = "氏名,電話番号,住所\r\n" + "".join(
        f"顧客 {i},090-1234-{i:04d},東京都千代田区{i}\r\n" for i in range(30)
    )
    data = gzip.compress(customers.encode("cp932"))
    assert _verdict("顧客.csv.gz", data, "contact@agency.example") == (
        "hold",
        "hold-customer-list-external",
    )


def test_shipped_policy_holds_unsupported_content_going_outside() -> None:
    rar = build.rar5(encrypted_headers=False)
    assert _verdict("資料.rar", rar, "contact@agency.example") == (
        "hold",
        "hold-uninspectable-external",
    )
    assert _verdict("資料.rar", rar, "suzuki@example.co.jp")[0] == "pass"
