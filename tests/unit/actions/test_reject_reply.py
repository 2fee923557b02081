"""reject_reply: 550 5.7.1 (451 4.7.1 when soft) with rule, ASCII reason and reference."""

from __future__ import annotations

from sendguard.actions.reject import reject_reply
from sendguard.model import Action, Verdict


def test_hard_reject_names_rule_reason_and_reference() -> None:
    """A reject answers 550 5.7.1 with the rule id, the reason and the reference."""
    verdict = Verdict(
        action=Action.REJECT, rule_id="reject-ppap", reason="Encrypted ZIP not allowed"
    )
    reply = reject_reply(verdict, "tx-4f2a", soft=False)
    assert (
        str(reply)
        == "550 5.7.1 Rejected by policy rule reject-ppap: Encrypted ZIP not allowed (ref tx-4f2a)"
    )
    assert reply.permanent


def test_soft_reject_is_a_451() -> None:
    """soft_reject turns the reject into a temporary 451 4.7.1 for rollouts."""
    reply = reject_reply(Verdict(action=Action.REJECT, rule_id="r", reason="x"), "ref1", soft=True)
    assert str(reply) == "451 4.7.1 Deferred by policy rule r: x (ref ref1)"
    assert not reply.permanent
    assert not reply.ok


def test_reply_is_one_printable_ascii_line_whatever_the_inputs() -> None:
    """Non-ASCII or line breaks in any input never reach the wire as such."""
    verdict = Verdict(action=Action.REJECT, rule_id="r", reason="顧客\r\n250 OK")
    text = str(reject_reply(verdict, "a\r\nb", soft=False))
    assert "\r" not in text
    assert "\n" not in text
    assert text.isascii()
    assert text == "550 5.7.1 Rejected by policy rule r: ?250 OK (ref a?b)"
