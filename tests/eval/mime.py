"""The parse path of the evaluation: attachment cases rebuilt as real MIME messages (real
files made by formats.attachment_bytes) and read back with `sendguard.parse.parse_message`,
so the figures cover extraction as well as detection."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

from sendguard.model import Mail
from sendguard.parse import ParseLimits, parse_message

from .case import Case
from .formats import TEXT_FORMATS, attachment_bytes

_TYPES = {
    "xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "docx": ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "pdf": ("application", "pdf"),
    "zip-csv": ("application", "zip"),
}


def message_bytes(case: Case) -> bytes:
    """The case as the bytes a mail client would submit."""
    assert case.content is not None
    message = EmailMessage()
    message["From"] = "yamada@example-corp.co.jp"
    message["To"] = ", ".join(case.recipients)
    message["Subject"] = case.mail.subject or "資料送付"
    if case.fmt == "body-text":
        message.set_content(case.content.rendered(), charset="iso-2022-jp", cte="7bit")
    elif case.fmt == "body-html":
        rows = "".join(
            "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in case.content.rows
        )
        message.set_content(f"<html><body><table>{rows}</table></body></html>", subtype="html")
    else:
        message.set_content("資料をお送りします。")
        name, data = attachment_bytes(case.content, case.fmt)
        maintype, subtype = _TYPES.get(case.fmt, ("text", "csv"))
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes(policy=email.policy.SMTP)


def parsed_mail(case: Case) -> Mail:
    """The `Mail` parse_message builds for an attachment case; other cases as they are."""
    if case.content is None or not case.fmt:
        return case.mail
    return parse_message(message_bytes(case), ParseLimits.model_validate({}))


__all__ = ["TEXT_FORMATS", "message_bytes", "parsed_mail"]
