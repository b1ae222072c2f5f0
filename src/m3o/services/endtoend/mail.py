"""Reading verification codes out of mail: cloudmailin's posts and the emails outbox.

An inbound mail counts only when it is addressed to the test customer, comes from the
configured sender and carries the verification subject; addresses are compared by their
address part, case-insensitively (``M3O <NoReply@m3o.com>`` is ``noreply@m3o.com``). The
code is the 8 letters between the verification sentence and ``This code expires``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr
from typing import Any

import orjson

__all__ = ["InboundMail", "Refusal", "code_in", "parse_inbound", "verification_code"]

_CODE = re.compile(
    r"please copy and paste this verification code into the signup form:\s*([A-Za-z]{8})\s*"
    r"This code expires"
)


def code_in(text: str) -> str | None:
    """The verification code in a mail's plain text, if it holds one."""
    found = _CODE.search(text)
    return None if found is None else found.group(1)


@dataclass(frozen=True, slots=True)
class InboundMail:
    """What a cloudmailin "JSON normalized" post says about one mail."""

    to: str
    sender: str
    subject: str
    plain: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a mail was ignored (logged; the mail is still answered 200)."""

    reason: str


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # a header given more than once
        return ", ".join(item for item in value if isinstance(item, str))
    return ""


def parse_inbound(body: bytes) -> InboundMail | Refusal:
    """The mail in a cloudmailin post, or why it is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Refusal("not JSON")
    if not isinstance(document, dict):
        return Refusal("not a JSON object")
    headers = document.get("headers")
    if not isinstance(headers, dict):
        return Refusal("no headers")
    lowered = {str(key).lower(): value for key, value in headers.items()}
    return InboundMail(
        to=_text(lowered.get("to")),
        sender=_text(lowered.get("from")),
        subject=_text(lowered.get("subject")),
        plain=_text(document.get("plain")),
    )


def _address(value: str) -> str:
    return parseaddr(value)[1].strip().lower()


def verification_code(mail: InboundMail, *, email: str, sender: str, subject: str) -> str | Refusal:
    """The code of a verification email to ``email`` from ``sender`` with ``subject``."""
    recipients = {address.strip().lower() for _, address in getaddresses([mail.to])}
    if email not in recipients:
        return Refusal("other recipient")
    if _address(mail.sender) != _address(sender):
        return Refusal("other sender")
    if subject not in mail.subject:
        return Refusal("other subject")
    code = code_in(mail.plain)
    if code is None:
        return Refusal("no code in the body")
    return code
