"""Posting to Slack and Discord: what each receives, retries, refusals, timeouts, and one
failing never stopping the other. Both are local fakes; nothing outside is reached."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from m3o.runtime.counters import CounterStore
from m3o.runtime.outbound import OutboundError
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.destinations import DISCORD_MAX_CONTENT, DiscordWebhook
from m3o.services.alerts.proto import alerts_pb2 as pb
from services.alerts.support import (
    DISCORD_PATH,
    SLACK_TOKEN,
    Received,
    alerts,
    call,
    discord_at,
    discord_fake,
    event,
    slack_at,
    slack_fake,
)
from support.http_fakes import served


async def test_an_alert_reaches_slack_and_discord_exactly_as_sent(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    slack, discord = slack_fake(), discord_fake()
    with served(slack.app()) as slack_url, served(discord.app()) as discord_url:
        handler = alerts(sessions, sql_counters, [slack_at(slack_url), discord_at(discord_url)])
        request = event(label="upstream", value=3, metadata={"error": "boom"}, userID="p-1")
        await handler.report_event(request, call("ReportEvent"))

    [listed] = (await handler.list(pb.ListRequest(), call("List"))).events
    [to_slack] = slack.received
    assert to_slack.path == "/api/chat.postMessage"
    assert to_slack.authorization == f"Bearer {SLACK_TOKEN}"
    assert to_slack.body["channel"] == "ops-alerts"
    assert to_slack.body["username"] == "M3O Alerts"
    text = to_slack.body["text"]
    assert text.startswith("Event received:\n```\n") and text.endswith("\n```")
    assert json.loads(text.removeprefix("Event received:\n```\n").removesuffix("\n```")) == {
        "id": listed.id,
        "category": "panic",
        "action": "/v1/helloworld/call",
        "label": "upstream",
        "value": 3,
        "metadata": {"error": "boom"},
        "userID": "p-1",
        "created": listed.created,
    }
    assert '\n   "category": "panic"' in text  # indented, as the reference posted it
    [to_discord] = discord.received
    assert to_discord.path == DISCORD_PATH
    assert to_discord.authorization == ""
    assert to_discord.content_type == "application/json"
    assert to_discord.body == {"content": text}


async def test_slack_down_does_not_stop_discord_and_the_failure_is_logged_without_secrets(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    slack, discord = slack_fake(), discord_fake()
    slack.ok = (500, {"ok": False, "error": "fatal_error"})
    with served(slack.app()) as slack_url, served(discord.app()) as discord_url:
        handler = alerts(sessions, sql_counters, [slack_at(slack_url), discord_at(discord_url)])
        with capture_logs() as logs:
            await handler.report_event(event(), call("ReportEvent"))

    assert len(slack.received) == 3  # a 5xx is tried again, three tries in all
    assert len(discord.received) == 1
    [failed] = [log for log in logs if log["event"] == "alerts.post_failed"]
    assert failed["destination"] == "slack"
    assert "500" in failed["error"]
    assert SLACK_TOKEN not in str(logs) and "discord-secret" not in str(logs)


async def test_discord_down_does_not_stop_slack(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    slack, discord = slack_fake(), discord_fake()
    discord.ok = (503, {"message": "unavailable"})
    with served(slack.app()) as slack_url, served(discord.app()) as discord_url:
        handler = alerts(sessions, sql_counters, [slack_at(slack_url), discord_at(discord_url)])
        with capture_logs() as logs:
            await handler.report_event(event(), call("ReportEvent"))

    assert len(slack.received) == 1
    assert len(discord.received) == 3
    [failed] = [log for log in logs if log["event"] == "alerts.post_failed"]
    assert failed["destination"] == "discord"
    assert "discord-secret" not in str(logs)


async def test_a_503_is_tried_again_and_then_posted_once() -> None:
    slack, discord = slack_fake(), discord_fake()
    slack.answers = [(503, {"ok": False, "error": "service_unavailable"})]
    discord.answers = [(503, {"message": "try later"})]
    with served(slack.app()) as slack_url, served(discord.app()) as discord_url:
        await slack_at(slack_url).post("hello")
        await discord_at(discord_url).post("hello")

    assert [r.body["text"] for r in slack.received] == ["hello", "hello"]
    assert [r.body for r in discord.received] == [{"content": "hello"}] * 2


async def test_a_400_is_refused_at_once() -> None:
    slack, discord = slack_fake(), discord_fake()
    slack.ok = (400, {"ok": False, "error": "invalid_arguments"})
    discord.ok = (400, {"message": "Cannot send an empty message", "code": 50006})
    with served(slack.app()) as slack_url, served(discord.app()) as discord_url:
        with pytest.raises(OutboundError) as to_slack:
            await slack_at(slack_url).post("hello")
        with pytest.raises(OutboundError) as to_discord:
            await discord_at(discord_url).post("hello")

    assert (to_slack.value.status, to_slack.value.transient) == (400, False)
    assert (to_discord.value.status, to_discord.value.transient) == (400, False)
    assert len(slack.received) == 1 and len(discord.received) == 1


async def test_slacks_ok_false_is_a_refusal_not_retried() -> None:
    slack = slack_fake()
    slack.ok = (200, {"ok": False, "error": "channel_not_found"})
    with (
        served(slack.app()) as slack_url,
        pytest.raises(OutboundError, match="channel_not_found") as refused,
    ):
        await slack_at(slack_url).post("hello")

    assert refused.value.transient is False
    assert len(slack.received) == 1


async def test_a_wrong_slack_token_is_refused() -> None:
    slack = slack_fake()
    slack.token = "xoxb-another-token"
    with served(slack.app()) as slack_url, pytest.raises(OutboundError, match="invalid_auth"):
        await slack_at(slack_url).post("hello")

    assert [r.authorization for r in slack.received] == [f"Bearer {SLACK_TOKEN}"]


async def test_a_slow_server_hits_the_timeout() -> None:
    slack, discord = slack_fake(), discord_fake()
    slack.delay = discord.delay = 5.0
    short = timedelta(milliseconds=200)
    with served(slack.app()) as slack_url, served(discord.app()) as discord_url:
        with pytest.raises(OutboundError, match="in time") as to_slack:
            await slack_at(slack_url, timeout=short).post("hello")
        with pytest.raises(OutboundError, match="in time") as to_discord:
            await discord_at(discord_url, timeout=short).post("hello")

    assert to_slack.value.transient and to_discord.value.transient
    assert len(slack.received) == 3 and len(discord.received) == 3


async def test_an_unreachable_server_is_tried_again_then_fails() -> None:
    with served(slack_fake().app()) as gone:
        pass
    with pytest.raises(OutboundError, match="unreachable"):
        await slack_at(gone).post("hello")
    with pytest.raises(OutboundError, match="unreachable"):
        await discord_at(gone).post("hello")


async def test_a_long_message_is_cut_to_discords_limit() -> None:
    discord = discord_fake()
    with served(discord.app()) as discord_url:
        await discord_at(discord_url).post("x" * 5000)

    [received] = discord.received
    assert len(received.body["content"]) == DISCORD_MAX_CONTENT


async def test_a_webhook_that_is_no_url_is_a_refusal_without_the_url() -> None:
    webhook = DiscordWebhook(
        webhook="http://exa mple.com:bad-port/hook-secret", timeout=timedelta(seconds=1)
    )
    with pytest.raises(OutboundError) as refused:
        await webhook.post("hello")
    await webhook.close()
    assert refused.value.transient is False
    assert "hook-secret" not in str(refused.value)


async def test_an_unreadable_slack_answer_is_a_refusal() -> None:
    slack = slack_fake()

    async def garbage(request: Request) -> Response:
        slack.received.append(Received(request.url.path, "", "", {}, ""))
        return Response("{not json", media_type="application/json")

    app = Starlette(routes=[Route("/api/chat.postMessage", garbage, methods=["POST"])])
    with served(app) as slack_url, pytest.raises(OutboundError, match="unreadably"):
        await slack_at(slack_url).post("hello")
    assert len(slack.received) == 1


@pytest.mark.parametrize("kind", ["slack", "discord"])
async def test_messages_share_one_connection_until_the_destination_is_closed(kind: str) -> None:
    fake = slack_fake() if kind == "slack" else discord_fake()
    with served(fake.app()) as url:
        destination = slack_at(url) if kind == "slack" else discord_at(url)
        for n in range(3):
            await destination.post(f"message {n}")
        await destination.close()
        await destination.post("after the close")  # a new client, as on a new start
        await destination.close()
    connections = [received.connection for received in fake.received]
    assert len(connections) == 4
    assert len(set(connections[:3])) == 1, connections
    assert connections[3] != connections[0]
