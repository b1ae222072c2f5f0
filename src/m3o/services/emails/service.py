"""Wiring of the emails service: the transport the config chooses, the courier's schedule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from m3o.runtime.clock import utc_now
from m3o.runtime.config import Config, ConfigError
from m3o.runtime.service import Cron, Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.emails import tables
from m3o.services.emails.courier import SHUTDOWN_GRACE, Courier, RetryPolicy
from m3o.services.emails.handler import Emails
from m3o.services.emails.proto.client import SPEC
from m3o.services.emails.sendgrid import SendgridTransport
from m3o.services.emails.smtp import SmtpTransport
from m3o.services.emails.templates import Templates
from m3o.services.emails.transport import LocalOutbox, MailTransport

__all__ = ["POLL_INTERVAL", "build", "definition", "make_transport"]

POLL_INTERVAL = timedelta(seconds=5)
"""How often scheduled emails, retries and abandoned attempts are looked for."""


def make_transport(whole: Config) -> MailTransport:
    """The transport the ``emails`` section chooses: the local outbox unless ``enabled``."""
    config = whole.emails
    if not config.enabled:
        return LocalOutbox()
    timeout = config.timeout.total_seconds()
    if config.transport == "sendgrid":
        api_key = config.sendgrid.api_key.get_secret_value()
        if not api_key:
            raise ConfigError(
                "emails.sendgrid.api_key: required when emails.transport is sendgrid",
                "emails.sendgrid.api_key",
            )
        return SendgridTransport(
            api_key=api_key,
            api_url=config.sendgrid.api_url,
            ip_pool_name=config.ip_pool_name,
            timeout=timeout,
        )
    smtp = config.smtp
    return SmtpTransport(
        host=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password.get_secret_value(),
        starttls=smtp.starttls,
        use_tls=smtp.use_tls,
        timeout=timeout,
    )


async def build(
    deps: Dependencies,
    *,
    sendgrid_templates: Mapping[str, str] | None = None,
    policy: RetryPolicy | None = None,
    poll_interval: timedelta = POLL_INTERVAL,
) -> ServiceParts:
    """The service's parts; tests pass the keyword arguments directly."""
    transport = make_transport(deps.config)
    courier = Courier(sessions=deps.sessions, transport=transport, clock=utc_now, policy=policy)
    handler = Emails(
        sessions=deps.sessions,
        courier=courier,
        templates=Templates(),
        default_sender=deps.config.emails.email_from,
        sendgrid_templates=(
            dict(sendgrid_templates or {}) if isinstance(transport, SendgridTransport) else None
        ),
        outbox_only=isinstance(transport, LocalOutbox),
    )

    async def deliver_due() -> None:
        await courier.deliver_due()

    async def stop() -> None:
        await courier.drain(timeout=SHUTDOWN_GRACE)
        await transport.close()

    return ServiceParts(
        handlers=[Handler(SPEC, handler)],
        crons=[Cron("deliver", poll_interval, deliver_due, at_start=True)],
        on_stop=[stop],
    )


async def _build(deps: Dependencies) -> ServiceParts:
    emails = deps.config.emails
    return await build(
        deps,
        sendgrid_templates=emails.sendgrid.templates,
        policy=RetryPolicy(
            max_attempts=emails.max_attempts,
            backoff=emails.retry_backoff,
            backoff_max=emails.retry_backoff_max,
        ),
        poll_interval=emails.poll_interval,
    )


definition = ServiceDefinition(
    name="emails",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
