"""The review console and signed links on a real relay, driven by a real HTTP client.

The relay runs in the test's loop (`running_relay`) with its web listener on port 0, the
`WEB_POLICY` (two-approval hold of customer lists, a delay for other outside mail) and a
maildir upstream, so the notices the worker sends arrive as files the tests read.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from sendguard.app import App
from sendguard.entry import Entry
from sendguard.log import configure_logging
from tests.support.relay import running_relay, write_policy
from tests.support.tls import CertPair
from tests.support.web import (
    PASSWORDS,
    WEB_POLICY,
    customer_list_message,
    links_in,
    plain_message,
    write_users,
)

BASE = "http://sendguard.test"
"""``notify.base_url`` of the test relay; links are re-pointed to the bound port."""


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[App]:
    configure_logging("json", "info")
    async with running_relay(
        policy_dir=write_policy(tmp_path / "policies", WEB_POLICY),
        upstream=f"maildir:{tmp_path / 'out'}",
        web_listen="127.0.0.1:0",
        users_file=write_users(tmp_path / "users"),
        notify={"base_url": BASE, "reviewers": ()},
        web={"link_key_file": str(tmp_path / "link.key"), "login_failures": 3},
        queue={"poll_interval": 0.2},
    ) as app:
        yield app


def _url(app: App, path: str = "") -> str:
    return f"http://127.0.0.1:{app.web_bound[0][1]}{path}"


def _local(app: App, link: str) -> str:
    return link.replace(BASE, _url(app))


async def _submit(app: App, data: bytes) -> Entry:
    await aiosmtplib.send(data, sender="tanaka@corp.example", recipients=["buyer@client.example"],
                          hostname="127.0.0.1", port=app.bound[0][1], timeout=30)  # fmt: skip
    assert app.store is not None
    entries = await app.store.list(states=["held", "delayed"])
    return entries[-1]


def _client() -> aiohttp.ClientSession:
    # unsafe: cookies for an IP-address host (127.0.0.1)
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _csrf(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with http.get(url) as response:
        page = await response.text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    return response.status, page, found.group(1) if found else ""


async def _sign_in(http: aiohttp.ClientSession, app: App, login: str, password: str = "") -> int:
    _status, _page, csrf = await _csrf(http, _url(app, "/review/login"))
    form = {"login": login, "password": password or PASSWORDS[login], "csrf": csrf}
    async with http.post(_url(app, "/review/login"), data=form, allow_redirects=False) as r:
        return r.status


async def _post(http: aiohttp.ClientSession, app: App, path: str, **form: str) -> tuple[int, str]:
    _status, _page, csrf = await _csrf(http, _url(app, "/review/"))
    async with http.post(_url(app, path), data={"csrf": csrf, **form}) as response:
        return response.status, await response.text()


async def _notices(app: App, tmp_path: Path, kind_subject: str, count: int = 1) -> list[str]:
    """Bodies of the notices whose subject contains `kind_subject` (waits for the worker)."""
    deadline = time.monotonic() + 20
    while True:
        found = []
        for path in sorted((tmp_path / "out").rglob("*")):
            if not path.is_file():
                continue
            msg = message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=default_policy)
            if kind_subject in str(msg.get("Subject", "")) and msg.get("X-Sendguard-Notification"):
                body = msg.get_body(preferencelist=("plain",))
                assert body is not None
                found.append(str(body.get_content()))
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_two_different_reviewers_release_and_others_are_refused(relay: App) -> None:
    """approvals = 2 needs two distinct signed-in reviewers of the rule; a reviewer of
    another rule and the sender are refused by the same rules the CLI uses."""
    entry = await _submit(relay, customer_list_message())
    assert entry.state == "held"
    async with _client() as http:
        assert await _sign_in(http, relay, "suzuki") == 303
        status, page, _ = await _csrf(http, _url(relay, "/review/"))
        assert status == 200 and entry.id in page
        status, page = await _post(http, relay, f"/review/q/{entry.id}/release")
        assert status == 200 and "あと 1 人の承認が必要です" in page
        status, page = await _post(http, relay, f"/review/q/{entry.id}/release")
        assert status == 403 and "already approved" in page
    async with _client() as http:
        assert await _sign_in(http, relay, "yamada") == 303
        status, page, _ = await _csrf(http, _url(relay, "/review/"))
        assert entry.id not in page  # not one of this rule's reviewers: not listed either
        status, _page = await _post(http, relay, f"/review/q/{entry.id}/release")
        assert status == 403
    async with _client() as http:
        assert await _sign_in(http, relay, "tanaka") == 303
        status, page = await _post(http, relay, f"/review/q/{entry.id}/release")
        assert status == 403 and "承認者または管理者として登録されていません" in page
    assert relay.store is not None
    assert (await relay.store.get(entry.id)).approvals == ("suzuki",)
    async with _client() as http:
        assert await _sign_in(http, relay, "sato") == 303
        await _csrf(http, _url(relay, f"/review/q/{entry.id}"))  # opens the message first
        status, page = await _post(http, relay, f"/review/q/{entry.id}/release")
        assert status == 200 and "送信を許可しました" in page
    done = await relay.store.get(entry.id)
    assert done.state in ("released", "delivering", "delivered")
    assert done.approvals == ("suzuki", "sato")
    records = await relay.store.audit_records()
    released = [r for r in records if r.event == "released" and r.queue_id == entry.id]
    details = json.loads(released[0].details)
    assert details["by"] == "sato" and details["verified_by"] == "web"
    assert details["client"] == "127.0.0.1"
    async with _client() as http:
        assert await _sign_in(http, relay, "sato") == 303
        _status, page, _ = await _csrf(http, _url(relay, "/review/dashboard"))
    row = page.split("<td>hold-customer-list</td>", 1)[1].split("</tr>", 1)[0]
    # one decision, released, and its releaser had opened the message first
    assert re.findall(r"<td>([^<]*)</td>", row)[:2] == ["1", "100%"]
    assert row.rstrip().endswith("<td>100%</td>")


async def test_reject_with_a_japanese_reason_reaches_the_sender(relay: App, tmp_path: Path) -> None:
    entry = await _submit(relay, customer_list_message("顧客リスト(却下される)"))
    reason = "個人情報を含むため、パスワード付きの共有リンクで送ってください"
    async with _client() as http:
        assert await _sign_in(http, relay, "kanri") == 303
        status, page = await _post(http, relay, f"/review/q/{entry.id}/reject", reason=reason)
        assert status == 200 and "却下しました" in page
    bodies = await _notices(relay, tmp_path, "[送信却下]")
    assert bodies and reason in bodies[0]


async def test_a_post_without_the_csrf_token_changes_nothing(relay: App) -> None:
    entry = await _submit(relay, customer_list_message())
    async with _client() as http:
        assert await _sign_in(http, relay, "suzuki") == 303
        for form in ({}, {"csrf": "forged-token-forged-token"}):
            async with http.post(_url(relay, f"/review/q/{entry.id}/release"), data=form) as r:
                assert r.status == 403
                assert "何も変更していません" in await r.text()
    assert relay.store is not None
    assert (await relay.store.get(entry.id)).approvals == ()


async def test_sign_in_failures_lock_the_login_out(relay: App) -> None:
    async with _client() as http:
        for _ in range(3):
            assert await _sign_in(http, relay, "suzuki", "wrong-password") == 401
        # Locked now: even the right password is refused for a while.
        assert await _sign_in(http, relay, "suzuki") == 429
    assert relay.store is not None
    events = [r.event for r in await relay.store.audit_records()]
    assert "web_login_locked" in events


async def test_pages_carry_strict_cookies_and_a_script_free_policy(relay: App) -> None:
    entry = await _submit(relay, customer_list_message())
    async with _client() as http:
        _status, _page, csrf = await _csrf(http, _url(relay, "/review/login"))
        form = {"login": "suzuki", "password": PASSWORDS["suzuki"], "csrf": csrf}
        async with http.post(_url(relay, "/review/login"), data=form,
                             allow_redirects=False) as response:  # fmt: skip
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/review" in cookie
        async with http.get(_url(relay, f"/review/q/{entry.id}")) as response:
            page = await response.text()
            csp = response.headers["Content-Security-Policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert response.headers["Referrer-Policy"] == "no-referrer"
        # The body is shown as text: the message's markup is escaped, never run.
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
        assert "顧客リスト.xlsx" in page and "customer-list" in page
        files = page.split('<table id="attachments">', 1)[1].split("</table>", 1)[0]
        assert "×30" in files  # what was found in that file, next to its name
        async with http.get(_url(relay, "/review/"), headers={"Accept-Language": "en"}) as r:
            assert "Held and delayed mail" in await r.text()
    async with aiohttp.ClientSession() as http, http.get(_url(relay, "/healthz")) as r:
        assert r.status == 200  # ops routes stay unauthenticated


async def test_the_sender_cancels_from_the_link_in_the_notice(relay: App, tmp_path: Path) -> None:
    """The delay notice carries signed links; opening one changes nothing, its POST cancels,
    and the same link used again changes nothing."""
    entry = await _submit(relay, plain_message())
    assert entry.state == "delayed"
    bodies = await _notices(relay, tmp_path, "送信待機")
    assert bodies, "no delay notice arrived"
    links = links_in(bodies[0])
    assert len(links) == 4  # send now + cancel, in Japanese and in English
    assert "sendguard queue cancel" not in bodies[0]  # no shell command for an Outlook user
    cancel = _local(relay, links[1])
    assert relay.store is not None
    async with _client() as http:
        status, page, csrf = await _csrf(http, cancel)
        assert status == 200 and "送信を取り消す" in page
        assert (await relay.store.get(entry.id)).state == "delayed"  # a GET alone: nothing
        async with http.post(cancel, data={"csrf": csrf}) as response:
            assert response.status == 200
            assert "取り消しました" in await response.text()
    assert (await relay.store.get(entry.id)).state == "cancelled"
    records = [r for r in await relay.store.audit_records() if r.event == "cancelled"]
    details = json.loads(records[0].details)
    assert details["verified_by"] == "link" and details["by"] == "tanaka"


async def test_replayed_tampered_and_expired_links_change_nothing(
    relay: App, tmp_path: Path
) -> None:
    entry = await _submit(relay, plain_message("二回使うリンク"))
    bodies = await _notices(relay, tmp_path, "二回使うリンク")
    send_now = _local(relay, links_in(bodies[0])[0])
    assert relay.store is not None
    key = bytes.fromhex((tmp_path / "link.key").read_text().strip())

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 4 * 24 * 3600  # older than the 72 h default

    expired = URLSafeTimedSerializer(key, salt="sendguard-link-v1", signer=Old).dumps(
        {"a": "cancel", "q": entry.id, "n": "old-nonce"}
    )
    forged = URLSafeTimedSerializer(b"not-the-key" * 3, salt="sendguard-link-v1").dumps(
        {"a": "cancel", "q": entry.id, "n": "forged"}
    )
    token = send_now.rsplit("/", 1)[1]
    payload, _, signature = token.rpartition(".")
    altered = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    async with _client() as http:
        for bad, status, words in (
            (expired, 410, "有効期限が切れています"),
            (forged, 400, "正しくありません"),
            (altered, 400, "正しくありません"),
        ):
            url = _url(relay, f"/review/link/{bad}")
            code, page, csrf = await _csrf(http, url)
            assert code == status and words in page
            _, _, csrf = await _csrf(http, _url(relay, "/review/login"))
            async with http.post(url, data={"csrf": csrf}) as response:
                assert response.status == status
        assert (await relay.store.get(entry.id)).state == "delayed"
        _, _, csrf = await _csrf(http, send_now)
        async with http.post(send_now, data={"csrf": csrf}) as response:
            assert response.status == 200
        state = (await relay.store.get(entry.id)).state
        assert state in ("released", "delivering", "delivered")
        async with http.post(send_now, data={"csrf": csrf}) as response:
            assert response.status == 409  # used, or the message is no longer delayed
    events = [r.event for r in await relay.store.audit_records() if r.queue_id == entry.id]
    assert events.count("released") == 1 and "cancelled" not in events


async def test_a_used_link_cannot_be_used_again(relay: App, tmp_path: Path) -> None:
    """Asking for review leaves the message held, so only the used-link record stops a
    replay: the second POST of the same link is refused and sends nothing more."""
    entry = await _submit(relay, customer_list_message("確認依頼のリンク"))
    bodies = await _notices(relay, tmp_path, "確認依頼のリンク")
    sender_notice = next(b for b in bodies if "承認者に確認を依頼する" in b)
    ask = _local(relay, links_in(sender_notice)[0])
    assert relay.store is not None
    async with _client() as http:
        _, page, csrf = await _csrf(http, ask)
        assert "承認者に確認を依頼する" in page
        async with http.post(ask, data={"csrf": csrf}) as response:
            assert response.status == 200
        async with http.post(ask, data={"csrf": csrf}) as response:
            assert response.status == 409
            assert "すでに使われています" in await response.text()
    events = [r.event for r in await relay.store.audit_records() if r.queue_id == entry.id]
    assert events.count("review_requested") == 1
    assert (await relay.store.get(entry.id)).state == "held"


async def test_single_sign_on_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    """A trusted proxy's login header signs in; the same header from anyone else does not."""
    configure_logging("json", "info")
    async with (
        running_relay(
            policy_dir=write_policy(tmp_path / "policies", WEB_POLICY),
            upstream=f"maildir:{tmp_path / 'out'}",
            web_listen="127.0.0.1:0",
            users_file=write_users(tmp_path / "users"),
            web={
                "link_key_file": str(tmp_path / "link.key"),
                "sso_header": "X-Forwarded-User",
                "trusted_proxies": "127.0.0.1/32",
            },
        ) as trusting,
        running_relay(
            policy_dir=write_policy(tmp_path / "policies2", WEB_POLICY),
            web_listen="127.0.0.1:0",
            web={"link_key_file": str(tmp_path / "link2.key"), "sso_header": "X-Forwarded-User"},
        ) as untrusting,
    ):
        entry = await _submit(trusting, customer_list_message())
        headers = {"X-Forwarded-User": "suzuki", "X-Forwarded-For": "203.0.113.7"}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                         headers=headers) as http:  # fmt: skip
            status, page, _ = await _csrf(http, _url(trusting, "/review/"))
            assert status == 200 and entry.id in page and ">suzuki<" in page
            status, page = await _post(http, trusting, f"/review/q/{entry.id}/release")
            assert status == 200 and "あと 1 人" in page
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(_url(untrusting, "/review/"), allow_redirects=False) as r,
        ):
            assert r.status == 303 and r.headers["Location"] == "/review/login"
        assert trusting.store is not None
        records = await trusting.store.audit_records()
        approved = next(r for r in records if r.event == "approved")
        assert json.loads(approved.details)["client"] == "203.0.113.7"


async def test_https_on_the_web_listener_gives_secure_cookies(
    tmp_path: Path, certs: CertPair
) -> None:
    """With web.tls_cert/tls_key the listener speaks HTTPS (the ops routes too) and the
    session cookie is marked Secure."""
    configure_logging("json", "info")
    async with running_relay(
        policy_dir=write_policy(tmp_path / "policies", WEB_POLICY),
        web_listen="127.0.0.1:0",
        users_file=write_users(tmp_path / "users"),
        web={
            "link_key_file": str(tmp_path / "link.key"),
            "tls_cert": str(certs.cert),
            "tls_key": str(certs.key),
        },
    ) as app:
        base = f"https://127.0.0.1:{app.web_bound[0][1]}"
        trust = ssl.create_default_context(cafile=str(certs.cert))
        connector = aiohttp.TCPConnector(ssl=trust)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            _status, _page, csrf = await _csrf(http, f"{base}/review/login")
            form = {"login": "suzuki", "password": PASSWORDS["suzuki"], "csrf": csrf}
            async with http.post(f"{base}/review/login", data=form,
                                 allow_redirects=False) as response:  # fmt: skip
                assert response.status == 303
                assert "Secure" in response.headers["Set-Cookie"]
