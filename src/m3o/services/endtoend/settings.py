"""The endtoend service's settings, taken once from the config sections ``endtoend``,
``server`` and ``emails``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from m3o.runtime.config import Config
from m3o.runtime.config.sections import ServerConfig
from m3o.runtime.email_address import normalise_email

__all__ = ["DEFAULT_EMAIL", "EndtoendSettings", "settings_from"]

DEFAULT_EMAIL = "endtoend@example.com"
"""The test customer when ``endtoend.email`` is empty. ``example.com`` is reserved
(RFC 2606): nobody can own the address, so the check never deletes a real customer, and
mail to it never leaves a local platform (the code is read from the outbox)."""

_OTHER_STEPS = timedelta(minutes=10)
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "[::1]"}  # noqa: S104 - mapped away


@dataclass(frozen=True, slots=True)
class EndtoendSettings:
    email: str = DEFAULT_EMAIL
    """The test customer's address, normalised."""
    api_url: str = "http://127.0.0.1:8080"
    """Base URL of the platform's HTTP front the run calls, without a trailing slash."""
    mailin_secret: str = ""
    """Secret inbound mail must carry; empty: every inbound mail is refused."""
    sender: str = "M3O <noreply@m3o.com>"
    subject: str = "Verify your M3O account email"
    interval: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(minutes=7)
    code_wait: timedelta = timedelta(minutes=2)
    """How long a run waits for the verification code, and then for the customer to read
    as verified."""
    read_outbox: bool = True
    """Also look for the code in the emails outbox: no mail transport is configured, so the
    verification email never leaves the platform."""
    scheduled: bool = False
    """Run every ``interval`` (``endtoend.enabled``)."""
    poll_interval: timedelta = timedelta(milliseconds=200)
    """Time between two looks for the code or the verified customer."""
    request_timeout: timedelta = timedelta(seconds=30)
    """Deadline of each HTTP request and each call to another service."""

    run_timeout: timedelta = timedelta(minutes=14)
    """The longest a run may take (it is then cut short and fails): the two waits, plus
    ten minutes for every other step."""

    @property
    def lease_ttl(self) -> timedelta:
        """How long the run lease lasts: longer than a run can take."""
        return self.run_timeout + timedelta(minutes=1)


def _own_front(server: ServerConfig) -> str:
    """The URL of this platform's HTTP front: ``server.public_url``, else the address it
    listens on, where "every address" becomes the loopback address."""
    if server.public_url:
        return server.public_url
    host = _ANY_ADDRESS.get(server.host, server.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{server.port}"


def settings_from(config: Config) -> EndtoendSettings:
    section = config.endtoend
    api_url = section.api_url or _own_front(config.server)
    return EndtoendSettings(
        email=normalise_email(section.email) or DEFAULT_EMAIL,
        api_url=api_url.rstrip("/"),
        mailin_secret=section.mailin_secret.get_secret_value(),
        sender=section.sender,
        subject=section.subject,
        interval=section.interval,
        max_age=section.max_age,
        code_wait=section.code_wait,
        run_timeout=2 * section.code_wait + _OTHER_STEPS,
        read_outbox=not config.emails.enabled,
        scheduled=section.enabled,
    )
