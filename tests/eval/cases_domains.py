"""Recipient cases: lookalike domains made by every kind of slip from the trusted targets,
real unrelated domains as negatives, and envelope/header layouts for the Bcc mistake."""

from __future__ import annotations

from collections.abc import Iterator

from sendguard.detect.domains import CONSUMER_DOMAINS
from sendguard.detect.similarity import kana_form
from sendguard.model import Mail
from sendguard.parse.addresses import parse_addr_spec, registrable_domain
from tests.unit.detect.helpers import ORG, SENDER, addrs

from .case import Case, labels
from .synth import Synth

LD = "lookalike-domain"
TARGETS = sorted(
    CONSUMER_DOMAINS | ORG.internal_domains | ORG.partner_domains | ORG.frequent_domains
)
TRUSTED = frozenset(TARGETS)
UNRELATED = (
    "toyota.co.jp",
    "sony.co.jp",
    "hitachi.co.jp",
    "panasonic.com",
    "nec.co.jp",
    "fujitsu.com",
    "ntt.co.jp",
    "kddi.com",
    "mufg.jp",
    "smbc.co.jp",
    "mizuhobank.co.jp",
    "japanpost.jp",
    "jreast.co.jp",
    "ana.co.jp",
    "jal.co.jp",
    "rakuten.co.jp",
    "mercari.com",
    "line.me",
    "cybozu.co.jp",
    "freee.co.jp",
    "moneyforward.com",
    "sansan.com",
    "recruit.co.jp",
    "u-tokyo.ac.jp",
    "kyoto-u.ac.jp",
    "osaka-u.ac.jp",
    "keio.jp",
    "waseda.jp",
    "city.osaka.lg.jp",
    "metro.tokyo.lg.jp",
    "pref.kanagawa.jp",
    "mhlw.go.jp",
    "nta.go.jp",
    "digital.go.jp",
    "kao.com",
    "shiseido.co.jp",
    "uniqlo.com",
    "nitori.co.jp",
    "aeon.info",
    "lawson.co.jp",
    "familymart.co.jp",
    "sej.co.jp",
    "yamato-hd.co.jp",
    "sagawa-exp.co.jp",
    "daiwahouse.co.jp",
    "sekisuihouse.co.jp",
    "obayashi.co.jp",
    "kajima.co.jp",
    "taisei.co.jp",
    "shimz.co.jp",
    "mitsubishicorp.com",
    "mitsui.com",
    "itochu.co.jp",
    "sumitomocorp.com",
    "marubeni.com",
    "nomura.co.jp",
    "daiwa.co.jp",
    "sbisec.co.jp",
    "tokiomarine-nichido.co.jp",
    "sompo-japan.co.jp",
    "nissay.co.jp",
    "dai-ichi-life.co.jp",
    "jp.fujitsu.com",
    "takeda.com",
    "astellas.com",
    "daiichisankyo.co.jp",
    "eisai.co.jp",
    "otsuka.co.jp",
    "kirin.co.jp",
    "asahibeer.co.jp",
    "suntory.co.jp",
    "ajinomoto.co.jp",
    "meiji.co.jp",
    "morinaga.co.jp",
    "yakult.co.jp",
    "nintendo.co.jp",
    "square-enix.com",
    "bandainamco.co.jp",
    "capcom.co.jp",
    "konami.com",
    "sega.co.jp",
    "dentsu.co.jp",
    "hakuhodo.co.jp",
    "nikkei.com",
    "asahi.com",
    "yomiuri.co.jp",
    "mainichi.jp",
    "nhk.or.jp",
    "fujitv.co.jp",
    "tbs.co.jp",
    "tv-asahi.co.jp",
    "ntv.co.jp",
    "gmo.jp",
    "sakura.ad.jp",
    "iij.ad.jp",
    "nifty.co.jp",
    "biglobe.co.jp",
    "sonynetwork.co.jp",
    "ricoh.co.jp",
    "canon.co.jp",
    "nikon.com",
    "olympus.co.jp",
    "kyocera.co.jp",
    "murata.com",
    "tdk.com",
    "omron.com",
    "keyence.co.jp",
    "fanuc.co.jp",
    "yaskawa.co.jp",
    "daikin.co.jp",
    "komatsu.jp",
    "kubota.co.jp",
    "yamaha.com",
    "honda.co.jp",
    "nissan.co.jp",
    "mazda.co.jp",
    "subaru.co.jp",
    "suzuki.co.jp",
    "denso.com",
    "aisin.com",
    "bridgestone.co.jp",
    "toray.co.jp",
    "asahi-kasei.co.jp",
    "shinetsu.co.jp",
    "jfe-steel.co.jp",
    "nipponsteel.com",
    "ihi.co.jp",
    "kawasaki.co.jp",
    "mhi.com",
    "tepco.co.jp",
    "kepco.co.jp",
    "tokyo-gas.co.jp",
    "osakagas.co.jp",
    # real services one edit away from a consumer domain: the known price of edit distance
    "email.com",
    "gmx.com",
    "mail.com",
)
_KEYS = "qwertyuiopasdfghjklzxcvbnm"
_HOMOGLYPHS = (
    ("o", "0"),
    ("l", "1"),
    ("m", "rn"),
    ("i", "1"),
    ("a", "а"),
    ("o", "о"),
    ("e", "е"),
    ("c", "с"),
)


def _neighbour(ch: str) -> str:
    i = _KEYS.find(ch)
    return _KEYS[(i + 1) % len(_KEYS)] if i >= 0 else "x"


def _slips(s: Synth, target: str) -> Iterator[tuple[str, str]]:
    """(lookalike, technique) variants of `target`."""
    reg = registrable_domain(target)
    name, _, suffix = reg.partition(".")
    prefix = target[: len(target) - len(reg)]

    def whole(n: str, sfx: str = suffix) -> str:
        return f"{prefix}{n}.{sfx}"

    if len(name) >= 4:
        i = s.rng.randrange(1, len(name) - 1)
        yield whole(name[:i] + name[i + 1] + name[i] + name[i + 2 :]), "transposition"
        if len(name) >= 5:  # shorter names are not judged by edit distance (min_length 4)
            yield whole(name[:i] + name[i + 1 :]), "deletion"
        yield whole(name[:i] + name[i] + name[i:]), "doubling"
        yield whole(name[:i] + _neighbour(name[i]) + name[i + 1 :]), "substitution"
    for a, b in s.rng.sample(_HOMOGLYPHS, len(_HOMOGLYPHS)):
        if a in name:
            yield whole(name.replace(a, b, 1)), "homoglyph"
            break
    other = {"co.jp": "jp", "ne.jp": "co.jp", "jp": "co.jp", "com": "co.jp", "or.jp": "co.jp"}.get(
        suffix, "com"
    )
    if len(name) >= 4:
        yield whole(name, other), "suffix-swap"
    if "-" in name:
        yield whole(name.replace("-", "")), "hyphen"
    elif len(name) >= 6:
        yield whole(name[:3] + "-" + name[3:]), "hyphen"
    typed = kana_form(target)
    if typed != target:
        yield typed, "ime-kana"  # the whole domain typed with the IME on
    half = f"{prefix}{name}.{kana_form(suffix)}"
    if half not in (target, typed):
        yield half, "ime-kana"  # the IME switched on half-way


def _valid(domain: str) -> bool:
    try:
        address = parse_addr_spec(f"x@{domain}")
    except ValueError:
        return False
    return address.domain not in TRUSTED and not any(
        address.domain.endswith("." + t) for t in TRUSTED
    )


def lookalike_cases(s: Synth) -> Iterator[Case]:
    """Slips of every target (positives) and unrelated real and synthetic domains (negatives)."""
    scope = frozenset({LD})
    seen: set[str] = set()
    for target in TARGETS:
        for domain, technique in _slips(s, target):
            if domain in seen or not _valid(domain):
                continue
            seen.add(domain)
            yield Case(
                f"lookalike-{domain}",
                f"lookalike:{technique}",
                scope,
                labels(LD, "lookalike"),
                Mail(),
                recipients=(f"taro@{domain}",),
            )
    synthetic = {s.fake.domain_name() for _ in range(150)}
    for domain in (*UNRELATED, *sorted(synthetic), *TARGETS):
        yield Case(
            f"unrelated-{domain}",
            "negative:domain",
            scope,
            frozenset(),
            Mail(),
            recipients=(f"taro@{domain}",),
        )


def recipient_cases(s: Synth) -> Iterator[Case]:
    """Envelope and To/Cc layouts: Bcc newsletters, visible customer lists, internal lists."""
    er, vr = "external-recipients", "visible-recipients"
    scope = frozenset({er, vr})
    for i in range(10):
        n = s.rng.randint(5, 60)
        customers = [f"c{j}@customer{i}-{j}.co.jp" for j in range(n)]
        yield Case(
            f"visible-{i}",
            "recipients:visible",
            scope,
            labels(er, "external") | labels(vr, "external-visible", "organisations-visible"),
            Mail(to=addrs(customers)),
            recipients=tuple(customers),
        )
        yield Case(
            f"bcc-{i}",
            "recipients:bcc-undisclosed",
            scope,
            labels(er, "external"),
            Mail(bcc=addrs(customers, "bcc")),
            recipients=tuple(customers),
        )
        yield Case(
            f"bcc-self-{i}",
            "recipients:bcc-self",
            scope,
            labels(er, "external"),
            Mail(to=addrs([SENDER]), bcc=addrs(customers, "bcc")),
            recipients=(SENDER, *customers),
        )
        staff = [f"s{j}@example-corp.co.jp" for j in range(n)]
        yield Case(
            f"internal-{i}",
            "recipients:internal",
            scope,
            frozenset(),
            Mail(to=addrs(staff)),
            recipients=tuple(staff),
        )
        one = f"buyer{i}@abc-trading.co.jp"
        yield Case(
            f"one-contact-{i}",
            "recipients:one-contact",
            scope,
            labels(er, "external") | labels(vr, "external-visible"),
            Mail(to=addrs([one])),
            recipients=(one,),
        )
        partner = f"p{i}@tanaka-shoji.co.jp"
        lst = "users@lists.example-corp.co.jp"
        yield Case(
            f"partner-list-{i}",
            "recipients:partner-list",
            scope,
            labels(er, "external", "partner", "external-list")
            | labels(vr, "external-visible", "organisations-visible"),
            Mail(to=addrs([partner, lst])),
            recipients=(partner, lst),
        )
