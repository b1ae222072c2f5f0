"""Served calls' holds finished into their event stream (the ``platform`` profile).

The gateway keeps a hold for every call it admits (see ``m3o.gateway.v1.holds``): the
reservation is the charge once the call has been answered with a 2xx and its request event
is on its way to the consumers. On Redis, where the book of holds and the event streams
live side by side, :class:`RedisServedHolds` does both in one script run per batch: for
each served call whose hold is still in its book, the event is appended to its topic's
stream (``XADD``, trimmed to the streams' retention as the relay trims them) and the hold
removed, its reservation kept as the charge. A hold no longer in its book (released: the
call went free) is left alone and its event is not appended.

One script run is atomic, so a crash leaves each served call either with its hold still in
the book and no event (recovery releases the hold: the call was answered free) or with its
event in the stream and no hold; never a charge without its event or an event without its
charge. The same call cannot be appended twice: only the run that removes its hold appends
it. Each run reads the book once (``HMGET``), appends each served event (``XADD``) and
removes the served holds at once (``HDEL``).

Both the counter store's keys and the streams must be on the one Redis the store talks to
(the platform profile keeps both at ``redis.url``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from redis.typing import EncodableT

from m3o.runtime.counters.admission import Hold
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events._relay import DEFAULT_RETENTION, entry_fields, min_kept_id, stream_key
from m3o.runtime.logging import get_logger
from m3o.runtime.store.redis import reply_text

__all__ = ["RedisServedHolds"]

_log = get_logger(__name__)


# KEYS[1] the book, KEYS[2] the stream; ARGV[1] the oldest entry id kept, then for each
# served call: its hold id, the number of its entry's fields and values, those.
# Returns 1 per call whose hold was there (event appended, hold removed), else 0; then,
# when Redis refused an append (out of memory, say), its error. A script that fails keeps
# what it wrote before, so an append Redis refuses ends the run cleanly: the calls appended
# so far have their holds removed, the others keep theirs (and are released: free).
_SETTLE_INTO_STREAM = """
local calls, ids = {}, {}
local at = 2
while at <= #ARGV do
  local count = tonumber(ARGV[at + 1])
  calls[#calls + 1] = {id = ARGV[at], first = at + 2, last = at + 1 + count}
  ids[#ids + 1] = ARGV[at]
  at = at + 2 + count
end
local out, served, removed, refused = {}, {}, {}, nil
for j = 1, #ids do
  out[j] = 0
end
for first = 1, #ids, 500 do
  if refused then
    break
  end
  local last = math.min(first + 499, #ids)
  local found = redis.call('HMGET', KEYS[1], unpack(ids, first, last))
  for j = first, last do
    local call = calls[j]
    if found[j - first + 1] and not served[call.id] then
      local added = redis.pcall('XADD', KEYS[2], 'MINID', '~', ARGV[1], '*',
                                unpack(ARGV, call.first, call.last))
      if type(added) == 'table' and added.err then
        refused = added.err
        break
      end
      served[call.id] = true
      removed[#removed + 1] = call.id
      out[j] = 1
    end
  end
end
for first = 1, #removed, 500 do
  redis.call('HDEL', KEYS[1], unpack(removed, first, math.min(first + 499, #removed)))
end
if refused then
  out[#ids + 1] = refused
end
return out
"""


class RedisServedHolds:
    """Finishes served calls' holds by appending their events to their streams, on the
    Redis of ``counters`` (see the module's description)."""

    def __init__(
        self, counters: RedisCounterStore, *, retention: timedelta = DEFAULT_RETENTION
    ) -> None:
        self._counters = counters
        self._retention = retention
        self._script = counters.register_script(_SETTLE_INTO_STREAM)

    async def settle_served(self, served: Sequence[tuple[Hold, Envelope]]) -> list[bool]:
        """For each (hold, event) in turn: True when its hold was still in its book (the
        event appended, the hold removed, its charge kept), False when it was gone, or when
        Redis refused its append (logged; the hold stays, to be released): nothing
        appended. One script run per book and topic; raises Unavailable when Redis cannot
        be reached (then some runs may have happened: their holds are gone)."""
        groups: dict[tuple[str, str], list[int]] = {}
        for place, (hold, envelope) in enumerate(served):
            groups.setdefault((hold.book, envelope.topic), []).append(place)
        found = [False] * len(served)
        min_id = min_kept_id(self._retention)
        for (book, topic), places in groups.items():
            args: list[EncodableT] = [min_id]
            for place in places:
                hold, envelope = served[place]
                fields = entry_fields(envelope.id, envelope, None)
                args += [hold.id, len(fields), *fields]
            reply = await self._counters.run_script(
                self._script, [self._counters.stored_key(book), stream_key(topic)], args
            )
            for place, one in zip(places, reply[: len(places)], strict=True):
                found[place] = bool(int(one))
            if len(reply) > len(places):
                _log.error(
                    "events.served_append_refused",
                    topic=topic,
                    unpublished=len(places) - sum(found[p] for p in places),
                    error=reply_text(reply[-1]),
                )
        return found
