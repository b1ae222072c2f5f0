"""Tables the emails service owns.

``emails_emails`` holds every email Send accepted: what to send (rendered subject, text and
HTML, or a SendGrid dynamic template and its data), when (``due``), and how delivery went.
A row is written and committed before any attempt to send it, so an email is never lost:
a delivery claims the row with a lease (``locked_until``) and a crashed delivery is
picked up again once the lease has passed. With no transport configured this table is the
local outbox.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["emails", "metadata"]

metadata = new_metadata()

emails = Table(
    "emails_emails",
    metadata,
    Column("id", String(36), primary_key=True),
    # a repeat of Send with the same key finds this row instead of sending again
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("sender", String(400), nullable=False),
    # normalised (trimmed, lower-cased)
    Column("recipient", String(320), nullable=False, index=True),
    Column("template_id", String(200), nullable=False),
    Column("subject", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("html", Text, nullable=False),
    # a SendGrid dynamic template to send instead of the rendered content ("" for none)
    Column("provider_template", String(200), nullable=False),
    Column("template_data", JSON, nullable=False),
    # pending, sent or failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    # when the caller asked for it to be sent (created, for "now")
    Column("send_at", UTCDateTime, nullable=False),
    # not to be tried before this time: send_at, then the retry backoff
    Column("due", UTCDateTime, nullable=False),
    # a delivery holds the row until then; free when null or past
    Column("locked_until", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    # the transport that sent it (outbox, smtp, sendgrid)
    Column("transport", String(16), nullable=False),
    Column("last_error", Text, nullable=False),
    Index("ix_emails_emails_status_due", "status", "due"),
    Index("ix_emails_emails_created_id", "created", "id"),
)
