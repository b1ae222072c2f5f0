"""Where alerts are posted: Slack, Discord, or the log when neither is set up.

Each destination posts one message through :func:`m3o.runtime.outbound.send_with_retries`:
a deadline on every try (``alert.timeout``), retries with backoff on timeouts, failed
connections, 429 and 5xx, none on any other refusal. Failures raise
:class:`~m3o.runtime.outbound.OutboundError`, whose message never holds the token or the
webhook URL.

- :class:`SlackChannel`: Slack's Web API ``chat.postMessage`` with the official
  ``slack_sdk`` client (bot token, channel, username). Slack answers most refusals with
  200 and ``{"ok": false, "error": ...}``: those are refused at once, not retried.
- :class:`DiscordWebhook`: a POST of ``{"content": ...}`` to the webhook (at most 2,000
  characters, Discord's limit).
- :class:`LogSink`: a disabled or unconfigured destination; the message is logged (the
  event is stored either way), so ``m3o serve`` works offline.

Slack and Discord each keep one HTTP client (its connections kept alive, its TLS context
made once) from their first post until :meth:`Destination.close` (the service's stop),
rather than one per message. ``slack_sdk`` and ``aiohttp``, its transport, are imported on
the first post to Slack: a platform without Slack never loads them.
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from m3o.runtime.config.sections import AlertConfig
from m3o.runtime.logging import get_logger
from m3o.runtime.outbound import MAX_DETAIL, OutboundError, Retries, send_with_retries

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

__all__ = [
    "DISCORD_MAX_CONTENT",
    "SLACK_API",
    "Destination",
    "DiscordWebhook",
    "LogSink",
    "SlackChannel",
    "destinations_from",
]

_log = get_logger(__name__)

SLACK_API = "https://slack.com/api/"
"""Slack's Web API (tests point the client at a fake)."""
DISCORD_MAX_CONTENT = 2000
"""Characters Discord accepts in one message's ``content``."""


class Destination(Protocol):
    name: str
    """``slack``, ``discord`` (logged with each failure)."""

    async def post(self, text: str) -> None:
        """Post ``text``; raises :class:`OutboundError` when it could not."""
        ...

    async def close(self) -> None:
        """Let go of the connections kept for posting (the service stops)."""
        ...


class SlackChannel:
    name = "slack"

    def __init__(
        self,
        *,
        token: str,
        channel: str,
        user_name: str,
        timeout: timedelta,
        retries: Retries | None = None,
        base_url: str = SLACK_API,
    ) -> None:
        self._token = token
        self._channel = channel
        self._user_name = user_name
        self._timeout = timeout.total_seconds()
        self._retries = retries
        self._base_url = base_url
        self._web: AsyncWebClient | None = None

    async def post(self, text: str) -> None:
        import aiohttp
        from slack_sdk.errors import SlackApiError, SlackClientError

        client = self._client()

        async def attempt() -> httpx.Response:
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await client.chat_postMessage(
                        channel=self._channel, username=self._user_name, text=text
                    )
            except TimeoutError as exc:
                raise httpx.TimeoutException("slack timed out") from exc
            except aiohttp.ClientError as exc:
                raise httpx.ConnectError(type(exc).__name__) from exc
            except SlackApiError as exc:
                return _refusal(exc.response)
            except (SlackClientError, ValueError) as exc:
                # An answer the client cannot read (not JSON): sending again will not help.
                raise OutboundError(
                    f"slack answered unreadably: {type(exc).__name__}", transient=False
                ) from exc
            return _as_response(reply)

        await send_with_retries(attempt, service="slack", retries=self._retries)

    def _client(self) -> AsyncWebClient:
        """The Web API client over this channel's one session, both made on the first post
        (a session belongs to the running event loop) and again after :meth:`close`."""
        import aiohttp
        from slack_sdk.web.async_client import AsyncWebClient

        if self._web is None or self._web.session is None or self._web.session.closed:
            # The client's own retry handlers are off: one retry rule, the runtime's.
            self._web = AsyncWebClient(
                token=self._token,
                base_url=self._base_url,
                timeout=max(1, math.ceil(self._timeout)),
                retry_handlers=[],
                session=aiohttp.ClientSession(),
            )
        return self._web

    async def close(self) -> None:
        web, self._web = self._web, None
        if web is not None and web.session is not None:
            await web.session.close()


def _as_response(reply: AsyncSlackResponse) -> httpx.Response:
    """Slack's answer as the runtime's retry rule reads it."""
    headers = {str(name): str(value) for name, value in dict(reply.headers).items()}
    return httpx.Response(reply.status_code, headers=headers, text=str(reply.data)[:MAX_DETAIL])


def _refusal(reply: Any) -> httpx.Response:
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

    if not isinstance(reply, AsyncSlackResponse):
        raise OutboundError("slack answered unreadably", transient=False)
    if reply.status_code == httpx.codes.OK:
        # {"ok": false, "error": "channel_not_found"}: the same message would fail again.
        data = reply.data if isinstance(reply.data, dict) else {}
        error = str(data.get("error") or "unknown error")[:MAX_DETAIL]
        raise OutboundError(f"slack refused the message: {error}", transient=False, status=200)
    return _as_response(reply)


class DiscordWebhook:
    name = "discord"

    def __init__(self, *, webhook: str, timeout: timedelta, retries: Retries | None = None) -> None:
        self._webhook = webhook
        self._timeout = timeout.total_seconds()
        self._retries = retries
        self._client: httpx.AsyncClient | None = None

    async def post(self, text: str) -> None:
        body = {"content": _shorten(text, DISCORD_MAX_CONTENT)}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        client = self._client
        try:
            await send_with_retries(
                lambda: client.post(self._webhook, json=body),
                service="discord",
                retries=self._retries,
            )
        except httpx.InvalidURL as exc:
            # Not in the message: the URL is the credential.
            raise OutboundError("discord webhook is not a URL", transient=False) from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class LogSink:
    """A destination that is off: the message goes to the log."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def post(self, text: str) -> None:
        _log.info("alerts.local_sink", destination=self.name, message=text)

    async def close(self) -> None:
        return None


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def destinations_from(config: AlertConfig) -> list[Destination]:
    """Slack and Discord as configured; each one off or unconfigured is a :class:`LogSink`."""
    token = config.slack.token.get_secret_value()
    webhook = config.discord.webhook.get_secret_value()
    slack: Destination = LogSink("slack")
    if config.slack.enabled and token:
        slack = SlackChannel(
            token=token,
            channel=config.slack.channel,
            user_name=config.slack.user_name,
            timeout=config.timeout,
        )
    elif config.slack.enabled:
        _log.error("alerts.slack_unconfigured", detail="alert.slack.token is empty")
    discord: Destination = LogSink("discord")
    if config.discord.enabled and webhook:
        discord = DiscordWebhook(webhook=webhook, timeout=config.timeout)
    elif config.discord.enabled:
        _log.error("alerts.discord_unconfigured", detail="alert.discord.webhook is empty")
    return [slack, discord]
