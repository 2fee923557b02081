"""Evaluation of the history detectors on a synthetic office (run by test_history_quality.py).

    python -m tests.eval.history_eval      # prints the table

An office of 40 senders writes for eight weeks (≈ 4,000 delivered messages, replies in
threads, colleagues in Cc) to 150 customer companies whose people share Japanese names
across companies, as real ones do. That history is recorded in a real SQLite history store.
Then two kinds of new traffic are judged, each through the real look-up and detectors:

* a week of ordinary traffic (1,000 messages): known correspondents, replies, a colleague's
  customer written to for the first time, first mails to new companies, newsletters —
  every flag here is a false flag an office feels;
* misdeliveries (60 of each kind): a typo of a domain the office writes to, the same name
  at another company (autocomplete), one letter off a known address, an outsider added to a
  known thread. Every one is also a first contact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import tempfile
from collections import Counter
from dataclasses import dataclass, replace

from sendguard.detect.first_contact import FirstContact
from sendguard.detect.lookalike_domain import LookalikeDomain
from sendguard.detect.recipient_slip import RecipientSlip
from sendguard.detect.thread_outsider import ThreadOutsider
from sendguard.history.extract import delivery
from sendguard.history.service import snapshot_query
from sendguard.history.store import HistoryStore
from sendguard.inspect import detect_context
from sendguard.model import Envelope, Mail, Organisation
from sendguard.parse.addresses import parse_addr_spec

ORG = Organisation(internal_domains=frozenset({"example-corp.co.jp"}))
SURNAMES = (
    ("tanaka", "田中"), ("suzuki", "鈴木"), ("sato", "佐藤"), ("takahashi", "高橋"),
    ("watanabe", "渡辺"), ("ito", "伊藤"), ("yamamoto", "山本"), ("nakamura", "中村"),
    ("kobayashi", "小林"), ("kato", "加藤"), ("yoshida", "吉田"), ("yamada", "山田"),
    ("sasaki", "佐々木"), ("yamaguchi", "山口"), ("matsumoto", "松本"), ("inoue", "井上"),
    ("kimura", "木村"), ("hayashi", "林"), ("shimizu", "清水"), ("mori", "森"),
    ("ikeda", "池田"), ("hashimoto", "橋本"), ("ishikawa", "石川"), ("ogawa", "小川"),
    ("okada", "岡田"), ("maeda", "前田"), ("fujita", "藤田"), ("goto", "後藤"),
)  # fmt: skip
GIVEN = (
    ("taro", "太郎"), ("hanako", "花子"), ("ichiro", "一郎"), ("yuki", "由紀"),
    ("kenji", "健二"), ("akiko", "明子"), ("hiroshi", "浩"), ("naoko", "直子"),
    ("takeshi", "武"), ("emi", "恵美"), ("makoto", "誠"), ("yoko", "洋子"),
    ("daisuke", "大輔"), ("mai", "麻衣"), ("shota", "翔太"), ("misaki", "美咲"),
    ("ryo", "亮"), ("ayaka", "彩花"), ("kazuki", "一輝"), ("nana", "奈々"),
)  # fmt: skip
TRADES = ("shoji", "kogyo", "denki", "sangyo", "seisakusho", "kensetsu", "butsuryu", "shokai")
START = dt.datetime(2026, 9, 1, 0, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Person:
    address: str
    name: str


@dataclass(frozen=True)
class Message:
    sender: str
    to: tuple[Person, ...]
    message_id: str
    references: tuple[str, ...] = ()
    cc_internal: tuple[str, ...] = ()


@dataclass
class Office:
    senders: list[str]
    companies: list[str]
    people: dict[str, list[Person]]
    """Company domain → its people."""
    contacts: dict[str, list[Person]]
    """Sender → the people they write to."""
    threads: dict[str, list[Message]]
    """Sender → messages they sent (thread roots for replies)."""


def _person(rng: random.Random, domain: str) -> Person:
    (sur, sur_k), (giv, giv_k) = rng.choice(SURNAMES), rng.choice(GIVEN)
    return Person(f"{giv[0]}.{sur}@{domain}", f"{sur_k} {giv_k}")


def build_office(seed: int = 7) -> Office:
    """Senders, companies and people, and who writes to whom."""
    rng = random.Random(seed)
    companies: list[str] = []
    while len(companies) < 150:
        domain = f"{rng.choice(SURNAMES)[0]}-{rng.choice(TRADES)}.co.jp"
        if domain not in companies:
            companies.append(domain)
    people: dict[str, list[Person]] = {}
    for domain in companies:
        staff: dict[str, Person] = {}
        while len(staff) < rng.randint(3, 8):
            p = _person(rng, domain)
            staff[p.address] = p
        people[domain] = list(staff.values())
    senders = [f"{s}{i}@example-corp.co.jp" for i, (s, _) in enumerate(SURNAMES * 2)][:40]
    contacts = {}
    for sender in senders:
        domains = rng.sample(companies, rng.randint(8, 14))
        pool = [p for d in domains for p in people[d]]
        contacts[sender] = rng.sample(pool, min(len(pool), rng.randint(25, 40)))
    return Office(senders, companies, people, contacts, {s: [] for s in senders})


def _message(rng: random.Random, office: Office, sender: str, n: int) -> Message:
    to = tuple(rng.sample(office.contacts[sender], rng.choice((1, 1, 1, 2, 3))))
    colleagues = tuple(rng.sample(office.senders, rng.choice((0, 0, 1))))
    past = office.threads[sender]
    if past and rng.random() < 0.3:  # a reply within an earlier thread, same parties
        root = rng.choice(past)
        return Message(sender, root.to, f"<{n}@example-corp.co.jp>",
                       (*root.references, root.message_id), colleagues)  # fmt: skip
    return Message(sender, to, f"<{n}@example-corp.co.jp>", (), colleagues)


def _headers(msg: Message) -> bytes:
    to = ", ".join(f"{p.name} <{p.address}>" for p in msg.to)
    refs = f"References: {' '.join(msg.references)}\r\n" if msg.references else ""
    return f"Message-ID: {msg.message_id}\r\nTo: {to}\r\n{refs}".encode()


async def record_history(store: HistoryStore, office: Office, messages: int = 4000) -> None:
    """Eight weeks of delivered mail into the store, in batches as the recorder writes them."""
    rng = random.Random(11)
    batch = []
    for n in range(messages):
        sender = rng.choice(office.senders)
        msg = _message(rng, office, sender, n)
        office.threads[sender].append(msg)
        at = START + dt.timedelta(minutes=20 * n)
        d = delivery(
            sender=sender,
            rcpts=[p.address for p in msg.to] + list(msg.cc_internal),
            header_bytes=_headers(msg),
            organisation=ORG,
            at=at,
        )
        if d is not None:
            batch.append(d)
        if len(batch) >= 200:
            await store.record(batch)
            batch = []
    await store.record(batch)


def _typo(domain: str, rng: random.Random, taken: set[str]) -> str:
    name, _, suffix = domain.partition(".")
    for _ in range(50):
        i = rng.randrange(1, len(name) - 1)
        kind = rng.choice(("insert", "delete", "double", "swap"))
        if kind == "insert":
            typo = name[:i] + rng.choice("aiueo") + name[i:]
        elif kind == "delete":
            typo = name[:i] + name[i + 1 :]
        elif kind == "double":
            typo = name[:i] + name[i] + name[i:]
        else:
            typo = name[: i - 1] + name[i] + name[i - 1] + name[i + 1 :]
        candidate = f"{typo}.{suffix}"
        if candidate not in taken and typo != name and "--" not in typo:
            return candidate
    return f"{name}x.{suffix}"


def _near(address: str, rng: random.Random) -> str:
    local, _, domain = address.partition("@")
    i = rng.randrange(2, len(local))
    if rng.random() < 0.5:
        local = local[:i] + local[i + 1 :]
    else:
        local = (
            local[: i - 1] + local[i] + local[i - 1] + local[i + 1 :]
            if i < len(local)
            else local + "a"
        )
    return f"{local}@{domain}"


Case = tuple[str, Envelope, Mail]
"""(kind, envelope, mail): kind is "ordinary" or the misdelivery label."""


def _case(kind: str, sender: str, to: list[Person], refs: tuple[str, ...] = ()) -> Case:
    mail = Mail(
        to=tuple(parse_addr_spec(p.address, field="to") for p in to),
        references=refs,
        in_reply_to=refs[-1:],
    )
    mail = replace(
        mail, to=tuple(replace(a, display_name=p.name) for a, p in zip(mail.to, to, strict=True))
    )
    return kind, Envelope(mail_from=sender, rcpt_tos=tuple(p.address for p in to)), mail


def ordinary_week(office: Office, n: int = 1000) -> list[Case]:
    """What an office sends in a week; nothing here is a mistake."""
    rng = random.Random(23)
    cases: list[Case] = []
    known_domains = {p.address.partition("@")[2] for c in office.contacts.values() for p in c}
    for i in range(n):
        sender = rng.choice(office.senders)
        roll = rng.random()
        if roll < 0.05:  # a colleague's customer, written to for the first time
            other = rng.choice([s for s in office.senders if s != sender])
            cases.append(_case("ordinary", sender, [rng.choice(office.contacts[other])]))
        elif roll < 0.07:  # a first mail to a brand-new customer
            domain = f"newco{i}-{rng.choice(TRADES)}.co.jp"
            cases.append(_case("ordinary", sender, [_person(rng, domain)]))
        elif roll < 0.10:  # a newsletter to many outsiders
            pool = [p for d in sorted(known_domains)[:60] for p in office.people[d]]
            cases.append(_case("ordinary", sender, rng.sample(pool, 30)))
        elif roll < 0.35 and office.threads[sender]:  # a reply in a thread, same parties
            root = rng.choice(office.threads[sender])
            refs = (*root.references, root.message_id)
            cases.append(_case("ordinary", sender, list(root.to), refs))
        else:
            k = rng.choice((1, 1, 2))
            cases.append(_case("ordinary", sender, rng.sample(office.contacts[sender], k)))
    return cases


def misdeliveries(
    office: Office, written: dict[str, Counter[str]], per_kind: int = 60
) -> list[Case]:
    """The four mistakes, each with a real sender and one of their real correspondents."""
    rng = random.Random(31)
    all_addresses = {p.address for ps in office.people.values() for p in ps}
    taken = set(office.companies)
    domain_count = Counter(
        a.partition("@")[2]
        for counts in written.values()
        for a, n in counts.items()
        for _ in range(n)
    )
    cases: list[Case] = []

    def regular(sender: str) -> Person | None:
        known = [p for p in office.contacts[sender] if written[sender][p.address] >= 2]
        return rng.choice(known) if known else None

    while len(cases) < per_kind * 4:
        kind = ("lookalike", "autocomplete", "near-address", "thread-outsider")[
            len(cases) // per_kind
        ]
        sender = rng.choice(office.senders)
        real = regular(sender)
        if real is None:
            continue
        local, _, domain = real.address.partition("@")
        if kind == "lookalike":
            if domain_count[domain] < 5:
                continue
            wrong = Person(f"{local}@{_typo(domain, rng, taken)}", real.name)
            cases.append(_case(kind, sender, [wrong]))
        elif kind == "autocomplete":  # the same name at another company
            other = rng.choice([c for c in office.companies if c != domain])
            wrong = Person(f"{local}@{other}", real.name)
            if written[sender][wrong.address]:
                continue
            cases.append(_case(kind, sender, [wrong]))
        elif kind == "near-address":
            wrong = Person(_near(real.address, rng), real.name)
            if wrong.address in all_addresses or wrong.address == real.address:
                continue
            cases.append(_case(kind, sender, [wrong]))
        else:
            roots = [m for m in office.threads[sender] if real in m.to]
            if not roots:
                continue
            root = rng.choice(roots)
            parties = {q.address.partition("@")[2] for q in root.to}
            outsider = rng.choice(
                [p for d in office.companies if d not in parties for p in office.people[d]]
            )
            refs = (*root.references, root.message_id)
            cases.append(_case(kind, sender, [*root.to, outsider], refs))
    return cases


DETECTORS = {
    "lookalike-domain": LookalikeDomain(),
    "first-contact": FirstContact(),
    "recipient-slip": RecipientSlip(),
    "thread-outsider": ThreadOutsider(),
}
EXPECTED = {
    "lookalike": "lookalike-domain",
    "autocomplete": "recipient-slip",
    "near-address": "recipient-slip",
    "thread-outsider": "thread-outsider",
}


@dataclass
class Result:
    """Per detector: recall on its own misdeliveries, first-contact recall on all of them,
    and the share of ordinary messages it flags."""

    recall: dict[str, float]
    first_contact_recall: float
    false_flags: dict[str, float]
    any_false_flag: float
    history_rows: int


async def evaluate_office() -> Result:
    """Build the office, record its history, judge the new traffic."""
    office = build_office()
    with tempfile.TemporaryDirectory() as tmp:
        store = await HistoryStore.open(f"sqlite:///{tmp}/history.db")
        try:
            await record_history(store, office)
            learned = await store.learned_domains(2)
            rows = (await store.counts())["history_recipient"]
            written: dict[str, Counter[str]] = {s: Counter() for s in office.senders}
            for sender in office.senders:
                for p in office.contacts[sender]:
                    snap = store.snapshot_sync(
                        sender,
                        [
                            *snapshot_query(
                                Envelope(mail_from=sender, rcpt_tos=(p.address,)), Mail(), ORG
                            )[1]
                        ],
                    )
                    written[sender][p.address] = snap.written.get(p.address, 0)
            ordinary = ordinary_week(office)
            mistakes = misdeliveries(office, written)
            flags = [_judge(store, learned, case) for case in [*ordinary, *mistakes]]
        finally:
            await store.close()
    kinds = [c[0] for c in [*ordinary, *mistakes]]
    recall = {}
    for kind, detector in EXPECTED.items():
        hits = [detector in f for k, f in zip(kinds, flags, strict=True) if k == kind]
        recall[kind] = sum(hits) / len(hits)
    mistake_flags = [f for k, f in zip(kinds, flags, strict=True) if k != "ordinary"]
    ordinary_flags = [f for k, f in zip(kinds, flags, strict=True) if k == "ordinary"]
    return Result(
        recall=recall,
        first_contact_recall=sum("first-contact" in f for f in mistake_flags) / len(mistake_flags),
        false_flags={
            d: sum(d in f for f in ordinary_flags) / len(ordinary_flags) for d in DETECTORS
        },
        any_false_flag=sum(bool(f) for f in ordinary_flags) / len(ordinary_flags),
        history_rows=rows,
    )


def _judge(store: HistoryStore, learned: dict[str, int], case: Case) -> frozenset[str]:
    _, envelope, mail = case
    ctx = detect_context(envelope, ORG, learned)
    snap = store.snapshot_sync(*snapshot_query(envelope, mail, ORG))
    ctx = replace(ctx, history=snap)
    return frozenset(d for d, det in DETECTORS.items() if det.detect(mail, ctx))


def main() -> None:
    """Print the table."""
    result = asyncio.run(evaluate_office())
    print(f"history rows: {result.history_rows}")
    for kind, value in result.recall.items():
        print(f"recall {kind:16} ({EXPECTED[kind]}): {value:.3f}")
    print(f"recall first-contact on every misdelivery: {result.first_contact_recall:.3f}")
    for detector, rate in result.false_flags.items():
        print(f"false flags on an ordinary week, {detector:17}: {rate:.3f}")
    print(f"ordinary messages flagged by any history-aware detector: {result.any_false_flag:.3f}")


if __name__ == "__main__":
    main()
