"""The text posted for an alert: the event as indented JSON, as the reference posted it,
and how many identical alerts the previous window collapsed."""

from __future__ import annotations

import json
from datetime import timedelta

from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.services.alerts.collapse import describe
from m3o.services.alerts.proto import alerts_pb2 as pb

__all__ = ["render"]


def render(event: pb.Event, skipped: int, window: timedelta) -> str:
    """``Event received:`` and the event in a code block (M3O's JSON names: ``userID``);
    with ``skipped``, a last line ``(and N more in the 5 min after the previous message)``."""
    body = json.dumps(message_to_dict(event), indent=3, ensure_ascii=False)
    text = f"Event received:\n```\n{body}\n```"
    if skipped:
        text += f"\n(and {skipped} more in the {describe(window)} after the previous message)"
    return text
