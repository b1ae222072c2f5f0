"""The outbox as operators see it: recent emails, for ``ListOutbox`` and ``m3o emails list``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from m3o.runtime.store import SessionFactory
from m3o.services.emails import records
from m3o.services.emails.records import EmailRecord, Status

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "EmailRecord", "Status", "format_outbox", "list_outbox"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


async def list_outbox(
    sessions: SessionFactory, *, limit: int = DEFAULT_LIMIT, to: str = "", status: str = ""
) -> list[EmailRecord]:
    """Recent emails, newest first: at most ``limit`` (1..1000), only those to ``to``
    and in ``status`` (pending, sent, failed) when given.

    Raises ValueError for a limit out of range or an unknown status.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    wanted = status.strip().lower()
    if wanted and wanted not in {s.value for s in Status}:
        raise ValueError(f"unknown status {status!r}; use pending, sent or failed")
    async with sessions() as session:
        return await records.recent(
            session, limit=limit, recipient=to.strip().lower(), status=wanted
        )


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_outbox(emails: Sequence[EmailRecord]) -> str:
    """Emails as ``m3o emails list`` prints them: a header line, the subject, the text."""
    if not emails:
        return "No emails."
    blocks = []
    for email in emails:
        state = email.status.value
        if email.status is Status.SENT:
            state += f" via {email.transport} at {_when(email.sent_at)}"
        elif email.status is Status.PENDING:
            state += f" (due {_when(email.due)}, {email.attempts} attempts)"
        else:
            state += f" after {email.attempts} attempts: {email.last_error}"
        lines = [
            f"{_when(email.created)}  {email.id}  to {email.recipient}  [{state}]",
            f"From: {email.sender}",
            f"Subject: {email.subject or '(SendGrid template ' + email.provider_template + ')'}",
            "",
            email.text.rstrip() or "(no plain text: rendered by SendGrid)",
        ]
        blocks.append("\n".join(lines))
    separator = "\n\n" + "-" * 72 + "\n\n"
    return separator.join(blocks)
