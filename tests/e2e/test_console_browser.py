"""The review console in a real browser: Debian's chromium driven by Playwright.

One relay process and one headless chromium for the module. Mail goes in over SMTP, the
notices come out in the maildir upstream, and every step is done by clicking in the page
as a reviewer or a sender would. ``SENDGUARD_SCREENSHOTS=DIR`` saves the main pages as PNG
(how docs/images/ was made).
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.support.relay import RelayProcess, write_policy
from tests.support.web import (
    PASSWORDS,
    WEB_POLICY,
    customer_list_message,
    links_in,
    plain_message,
    write_users,
)

CHROMIUM = "/usr/bin/chromium"
BASE = "http://sendguard.test"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@dataclass(frozen=True)
class Queued:
    """A queue entry as the test sees it."""

    id: str
    state: str


class Console:
    """The relay process and how to reach it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "queue.db"
        self.store_url = f"sqlite:///{self.db}"
        env = {
            "SENDGUARD_POLICY_DIR": str(write_policy(root / "policies", WEB_POLICY)),
            "SENDGUARD_UPSTREAM": f"maildir:{root / 'out'}",
            "SENDGUARD_STORE": self.store_url,
            "SENDGUARD_WEB_LISTEN": "127.0.0.1:0",
            "SENDGUARD_USERS_FILE": str(write_users(root / "users")),
            "SENDGUARD_NOTIFY__BASE_URL": BASE,
            "SENDGUARD_QUEUE__POLL_INTERVAL": "0.2",
            "SENDGUARD_CONFIG": "",
        }
        self.relay = RelayProcess(env, cwd=root).start()
        address = str(self.relay.wait_for("web_listening")["address"])
        self.url = f"http://{address}"

    def submit(self, data: bytes) -> Queued:
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=60) as smtp:
            smtp.sendmail("tanaka@corp.example", ["buyer@client.example"], data)
        return self.entries()[-1]

    def entries(self) -> list[Queued]:
        # Read with sqlite3: Playwright's sync API owns this thread's event loop.
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            rows = db.execute("SELECT id, state FROM queue_entry ORDER BY created_at, id")
            return [Queued(str(i), str(s)) for i, s in rows]

    def state(self, queue_id: str) -> str:
        return next(e.state for e in self.entries() if e.id == queue_id)

    def notices(self, words: str) -> list[str]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = []
            for path in sorted((self.root / "out").rglob("*")):
                if not path.is_file():
                    continue
                raw = path.read_bytes()
                msg = message_from_bytes(raw, _class=EmailMessage, policy=default_policy)
                if words in str(msg.get("Subject", "")) and msg.get("X-Sendguard-Notification"):
                    part = msg.get_body(preferencelist=("plain",))
                    found.append(str(part.get_content()) if part else "")
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no notice about {words!r} arrived")

    def local(self, link: str) -> str:
        return link.replace(BASE, self.url)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    running = Console(tmp_path_factory.mktemp("console"))
    try:
        yield running
    finally:
        running.relay.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: playwright_api.Browser) -> Iterator[playwright_api.Page]:
    context = browser.new_context(locale="ja-JP", extra_http_headers={"Accept-Language": "ja"},
                                  viewport={"width": 1100, "height": 800})  # fmt: skip
    try:
        yield context.new_page()
    finally:
        context.close()


def _shot(page: playwright_api.Page, name: str) -> None:
    directory = os.environ.get("SENDGUARD_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=False)


def _sign_in(page: playwright_api.Page, console: Console, login: str) -> None:
    page.goto(f"{console.url}/review/login")
    page.get_by_label("ログイン名").fill(login)
    page.get_by_label("パスワード").fill(PASSWORDS[login])
    page.get_by_role("button", name="サインイン").click()
    assert page.locator("#who").inner_text() == login


def _sign_out(page: playwright_api.Page) -> None:
    page.get_by_role("button", name="サインアウト").click()
    page.wait_for_url("**/review/login")


def test_two_reviewers_release_a_held_customer_list(
    console: Console, page: playwright_api.Page
) -> None:
    entry = console.submit(customer_list_message("顧客リスト(2 名承認)"))
    assert entry.state == "held"
    page.goto(f"{console.url}/review/login")
    _shot(page, "console-login")
    _sign_in(page, console, "suzuki")
    assert entry.id in page.locator("#queue").inner_text()
    _shot(page, "console-queue")
    page.get_by_role("link", name=entry.id).click()
    files = page.locator("#attachments").inner_text()
    assert "顧客リスト.xlsx" in files and "×30" in files
    assert "<script>" in page.locator("#body").inner_text()  # shown as text, not run
    _shot(page, "console-detail")
    page.get_by_role("button", name="送信を許可する").click()
    assert "あと 1 人の承認が必要です" in page.locator("#notice").inner_text()
    page.get_by_role("button", name="送信を許可する").click()  # the same reviewer again
    assert "already approved" in page.locator("#error").inner_text()
    _sign_out(page)
    _sign_in(page, console, "sato")
    page.goto(f"{console.url}/review/q/{entry.id}")
    page.get_by_role("button", name="送信を許可する").click()
    assert "送信を許可しました" in page.locator("#notice").inner_text()
    assert console.state(entry.id) in ("released", "delivering", "delivered")


def test_a_reviewer_of_other_rules_is_refused(console: Console, page: playwright_api.Page) -> None:
    entry = console.submit(customer_list_message("顧客リスト(対象外の承認者)"))
    _sign_in(page, console, "yamada")
    assert entry.id not in page.content()
    page.goto(f"{console.url}/review/q/{entry.id}")
    assert "権限がありません" in page.locator("#message").inner_text()
    # Forcing the POST (with a valid CSRF token) is refused by the review rules.
    page.goto(f"{console.url}/review/")
    token = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    response = page.request.post(f"{console.url}/review/q/{entry.id}/release",
                                 form={"csrf": token})  # fmt: skip
    assert response.status == 403
    assert console.state(entry.id) == "held"


def test_reject_with_a_japanese_reason_reaches_the_sender(
    console: Console, page: playwright_api.Page
) -> None:
    entry = console.submit(customer_list_message("顧客リスト(却下)"))
    _sign_in(page, console, "kanri")
    page.goto(f"{console.url}/review/q/{entry.id}")
    reason = "顧客情報はファイル共有で送ってください"
    page.get_by_label("却下の理由(差出人に伝えます)").fill(reason)
    page.get_by_role("button", name="却下する").click()
    assert "却下しました" in page.locator("#notice").inner_text()
    assert any(reason in body for body in console.notices("[送信却下]"))


def test_the_sender_cancels_from_the_notice_link(
    console: Console, page: playwright_api.Page
) -> None:
    entry = console.submit(plain_message("待機中のお見積り"))
    assert entry.state == "delayed"
    body = console.notices("待機中のお見積り")[0]
    cancel = console.local(links_in(body)[1])
    page.goto(cancel)
    _shot(page, "link-confirm")
    assert console.state(entry.id) == "delayed"  # opening the link changed nothing
    page.get_by_role("button", name="送信を取り消す").click()
    assert "取り消しました" in page.locator("#message").inner_text()
    assert console.state(entry.id) == "cancelled"


def test_expired_and_tampered_links_change_nothing(
    console: Console, page: playwright_api.Page
) -> None:
    entry = console.submit(plain_message("改ざんされるリンク"))
    link = console.local(links_in(console.notices("改ざんされるリンク")[0])[1])
    payload, _, signature = link.rpartition(".")
    tampered = f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
    page.goto(tampered)
    assert "正しくありません" in page.locator("#message").inner_text()
    assert page.locator("#confirm").count() == 0
    key = bytes.fromhex((console.root / "link.key").read_text().strip())
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 4 * 24 * 3600

    expired = URLSafeTimedSerializer(key, salt="sendguard-link-v1", signer=Old).dumps(
        {"a": "cancel", "q": entry.id, "n": "expired-nonce"}
    )
    page.goto(f"{console.url}/review/link/{expired}")
    assert "有効期限が切れています" in page.locator("#message").inner_text()
    assert console.state(entry.id) == "delayed"


def test_a_post_without_the_csrf_token_is_refused(
    console: Console, page: playwright_api.Page
) -> None:
    entry = console.submit(customer_list_message("顧客リスト(CSRF)"))
    _sign_in(page, console, "suzuki")
    response = page.request.post(f"{console.url}/review/q/{entry.id}/release", form={})
    assert response.status == 403
    assert console.state(entry.id) == "held"
