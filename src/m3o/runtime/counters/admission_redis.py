"""Admission on the Redis counter store: the rules of :mod:`m3o.runtime.counters.admission` as Lua.

``ADMIT_MANY`` decides a batch of admissions (one, for ``admit``) in one script run, atomic
in Redis: each sees what the ones before it reserved, the client packs and parses one
command, and Redis reads each key the batch touches once and writes it once, so a batch of
calls of one project costs about as many commands as a single call.
The script reads first and writes only once the verdicts are known, so a refused call
writes nothing but its rate hit, and ``BALANCE_UNKNOWN`` and ``CAP_UNKNOWN`` not even that.
Counters an admission creates get the request's ``monthly_ttl`` (the rate window:
``rate_window``; cumulative debits: no expiry); counters that exist keep theirs.

Every key of a script must live on one Redis node (the platform runs a single primary).
A call that times out may still have run in Redis: the caller gets ``Unavailable`` and the
reservation, if any, stands (the store fails closed; it never admits twice).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

from m3o.runtime.counters.admission import (
    FREE,
    AdmissionDecision,
    AdmissionRequest,
    Verdict,
    release_keys,
)

__all__ = [
    "ADMIT_MANY",
    "COMMIT_MANY",
    "RELEASE",
    "AdmissionPacker",
    "admit_arguments",
    "decision_from_reply",
    "release_arguments",
]

# KEYS: for each admission in turn, its rate, cap, free, endpoint, total, balance, debited
# and book-of-holds keys (8). ARGV: for each in turn, its rate limit, rate window ms, cap
# (-1: none), price, free quota, endpoint quota, monthly ttl ms, hold id ('' for none: the
# book key is then unused), 1 when the cap key holds reported units (missing: unknown)
# else 0 (9).
# The admissions are decided in order, each seeing what the ones before it reserved: one
# atomic step for all. An admitted call with a hold is written in its book (hold id -> what
# a release needs) in the same run as its reservation.
# The batch keeps its own view of the keys it touches: each is read at most once (a
# counter only counted is not read at all), and each is written once at the end with what
# the batch added, so Redis runs a handful of commands per batch, not per admission.
# Returns five numbers per admission in turn: verdict, charge kind, debited, window count,
# window ms left. Verdict 0 admitted, 1 rate limited, 2 cap exceeded, 3 insufficient
# credit, 4 balance unknown, 5 cap unknown; charge kind 0 none, 1 free, 2 zero, 3 the price.
ADMIT_MANY = """
local value, existed, added, order, life = {}, {}, {}, {}, {}
local windows, window_order = {}, {}
local books, book_order = {}, {}

-- A counter as the batch sees it: read once; what the batch added is on top.
local function read(key)
  if value[key] == nil then
    local found = redis.call('GET', key)
    existed[key] = found ~= false
    value[key] = (tonumber(found) or 0) + (added[key] or 0)
  end
  return value[key]
end
-- Add to a counter, written at the end. ttl: the expiry of a counter this batch creates
-- (nil: none).
local function add(key, amount, ttl)
  if added[key] == nil then
    added[key] = 0
    order[#order + 1] = key
    life[key] = ttl
  end
  added[key] = added[key] + amount
  if value[key] ~= nil then
    value[key] = value[key] + amount
  end
end
-- A rate window: a window starts with its first hit; a key without expiry (not a window)
-- starts one too.
local function window(key, ms)
  local w = windows[key]
  if w == nil then
    local left = redis.call('PTTL', key)
    w = {fresh = left < 0, left = left, used = 0, hits = 0, ms = ms}
    if w.fresh then
      w.left = ms
    else
      w.used = tonumber(redis.call('GET', key)) or 0
    end
    windows[key] = w
    window_order[#window_order + 1] = key
  end
  return w
end

local function admit(K, A)
  local limit = tonumber(A[1])
  local cap = tonumber(A[3])
  local price = tonumber(A[4])
  local free_quota = tonumber(A[5])
  local endpoint_quota = tonumber(A[6])
  local monthly = tonumber(A[7])

  if limit <= 0 then
    return {1, 0, 0, 0, tonumber(A[2])}
  end
  local w = window(K[1], tonumber(A[2]))
  if w.used >= limit then
    return {1, 0, 0, w.used, w.left}
  end
  local function hit()
    w.used = w.used + 1
    w.hits = w.hits + 1
    return w.used
  end
  local function count_call()
    add(K[5], 1, monthly)
    add(K[4], 1, monthly)
  end
  local function held(kind, debited)
    if A[8] ~= '' then
      local record = {k = {K[3], K[4], K[5], K[6], K[7]}, f = 0, d = debited}
      if kind == 1 then
        record.f = 1
      end
      local book = books[K[8]]
      if book == nil then
        book = {}
        books[K[8]] = book
        book_order[#book_order + 1] = K[8]
      end
      book[#book + 1] = A[8]
      book[#book + 1] = cjson.encode(record)
    end
    return {0, kind, debited, hit(), w.left}
  end

  if cap == 0 then
    return {2, 0, 0, hit(), w.left}
  end
  if cap > 0 then
    local units = read(K[2])
    if not existed[K[2]] and A[9] == '1' then
      return {5, 0, 0, w.used, w.left}
    end
    if units >= cap then
      return {2, 0, 0, hit(), w.left}
    end
  end
  if price == 0 then
    if read(K[3]) < free_quota then
      add(K[3], 1, monthly)
      count_call()
      return held(1, 0)
    end
    price = 1
  end
  if endpoint_quota > 0 and read(K[4]) < endpoint_quota then
    count_call()
    return held(2, 0)
  end
  local balance = read(K[6])
  if not existed[K[6]] then
    return {4, 0, 0, w.used, w.left}
  end
  if balance < price then
    return {3, 0, 0, hit(), w.left}
  end
  add(K[6], -price, nil)
  add(K[7], price, nil)
  count_call()
  return held(3, price)
end

local out = {}
for i = 0, #KEYS / 8 - 1 do
  local K, A = {}, {}
  for j = 1, 8 do
    K[j] = KEYS[i * 8 + j]
  end
  for j = 1, 9 do
    A[j] = ARGV[i * 9 + j]
  end
  local reply = admit(K, A)
  for j = 1, 5 do
    out[i * 5 + j] = reply[j]
  end
end

-- The writes, once per key. A counter created here gets its expiry; one that exists keeps
-- its own (a 1 with no expiry found by a counter never read is one this batch made, or
-- one found at 0 with none, which gets it too).
for _, key in ipairs(window_order) do
  local w = windows[key]
  if w.hits > 0 then
    if w.fresh then
      redis.call('SET', key, w.used, 'PX', w.ms)
    else
      redis.call('INCRBY', key, w.hits)
    end
  end
end
for _, key in ipairs(order) do
  local amount = added[key]
  if amount ~= 0 then
    local now = redis.call('INCRBY', key, amount)
    local ttl = life[key]
    if ttl ~= nil and (existed[key] == false
        or (now == amount and redis.call('PTTL', key) == -1)) then
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
for _, book in ipairs(book_order) do
  local fields = books[book]
  for at = 1, #fields, 500 do
    redis.call('HSET', book, unpack(fields, at, math.min(at + 499, #fields)))
  end
end
return out
"""

# KEYS: free, endpoint, total, balance, debited, book. ARGV: 1 if the call was free,
# debited, hold id ('' for none). With a hold, nothing is undone unless the hold was still
# in the book (it is removed), and what is given back is what its record says (the
# caller may not know: an admission whose reply was lost): a release is idempotent.
# Counters that expired meanwhile stay missing; the debit comes back to a loaded hot
# balance and always off the cumulative debits (a balance loaded later is computed from
# them).
RELEASE = """
local free, debited = ARGV[1], tonumber(ARGV[2])
if ARGV[3] ~= '' then
  local found = redis.call('HGET', KEYS[6], ARGV[3])
  if not found then
    return 0
  end
  redis.call('HDEL', KEYS[6], ARGV[3])
  local record = cjson.decode(found)
  free, debited = tostring(record.f), tonumber(record.d)
end
local function uncount(key)
  if redis.call('EXISTS', key) == 1 then
    redis.call('DECR', key)
  end
end
uncount(KEYS[3])
uncount(KEYS[2])
if free == '1' then
  uncount(KEYS[1])
end
if debited > 0 then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('INCRBY', KEYS[4], debited)
  end
  redis.call('DECRBY', KEYS[5], debited)
end
return 1
"""

# KEYS: the book of each hold in turn. ARGV: hold id, note, for each in turn. A hold still
# in its book gets the note (once: a second commit keeps the first note); returns 1 for
# each hold found, 0 for one that is gone (released). Each book is read with one HMGET and
# written with one HSET (per 500 holds).
COMMIT_MANY = """
local places, book_order = {}, {}
for i = 1, #KEYS do
  if places[KEYS[i]] == nil then
    places[KEYS[i]] = {}
    book_order[#book_order + 1] = KEYS[i]
  end
  local list = places[KEYS[i]]
  list[#list + 1] = i
end
local out = {}
for _, book in ipairs(book_order) do
  local list = places[book]
  for first = 1, #list, 500 do
    local ids, writes, noted = {}, {}, {}
    local last = math.min(first + 499, #list)
    for j = first, last do
      ids[#ids + 1] = ARGV[list[j] * 2 - 1]
    end
    local found = redis.call('HMGET', book, unpack(ids))
    for j = first, last do
      local i = list[j]
      local record = found[j - first + 1]
      out[i] = 0
      if record then
        out[i] = 1
        local id = ARGV[i * 2 - 1]
        if not noted[id] then
          noted[id] = true
          local decoded = cjson.decode(record)
          if decoded.s == nil then
            decoded.s = ARGV[i * 2]
            writes[#writes + 1] = id
            writes[#writes + 1] = cjson.encode(decoded)
          end
        end
      end
    end
    if #writes > 0 then
      redis.call('HSET', book, unpack(writes))
    end
  end
end
return out
"""

_unheld = operator.attrgetter(*(f.name for f in fields(AdmissionRequest) if f.name != "hold"))
"""What makes an admission what it is but its hold: its packed parts' identity."""
_MAX_PACKED = 10_000
"""Distinct admissions whose packed parts are kept (one per key, endpoint, tier, month)."""
_NO_BOOK = "-"
"""The book key of an admission without a hold (declared, never touched)."""

_VERDICTS = {
    0: Verdict.ADMITTED,
    1: Verdict.RATE_LIMITED,
    2: Verdict.CAP_EXCEEDED,
    3: Verdict.INSUFFICIENT_CREDIT,
    4: Verdict.BALANCE_UNKNOWN,
    5: Verdict.CAP_UNKNOWN,
}


def admit_arguments(
    request: AdmissionRequest, key: Callable[[str], str], ms: Callable[[timedelta], int]
) -> tuple[list[str], list[int | str]]:
    """The script's keys (through the store's ``key`` prefixing) and arguments."""
    keys = [
        request.rate_key,
        request.cap_key,
        request.free_key,
        request.endpoint_key,
        request.total_key,
        request.balance_key,
        request.debited_key,
        request.hold.book if request.hold is not None else _NO_BOOK,
    ]
    arguments: list[int | str] = [
        request.rate_limit,
        ms(request.rate_window),
        request.cap,
        request.price,
        request.free_quota,
        request.endpoint_quota,
        ms(request.monthly_ttl),
        request.hold.id if request.hold is not None else "",
        int(request.cap_reported),
    ]
    return [key(k) for k in keys], arguments


def release_arguments(
    request: AdmissionRequest, decision: AdmissionDecision, key: Callable[[str], str]
) -> tuple[list[str], list[int | str]]:
    hold = request.hold
    keys = [*release_keys(request), hold.book if hold is not None else _NO_BOOK]
    arguments: list[int | str] = [
        int(decision.charge == FREE),
        decision.debited,
        hold.id if hold is not None else "",
    ]
    return [key(k) for k in keys], arguments


_CHARGES = ("", FREE, "0")
"""The charge of each kind of admission but a debit (3: the units debited)."""


def decision_from_reply(request: AdmissionRequest, reply: Sequence[Any]) -> AdmissionDecision:
    verdict, kind, debited, used, left = map(int, reply)
    charge = str(debited) if kind == 3 else _CHARGES[kind]
    return AdmissionDecision(
        _VERDICTS[verdict],
        charge=charge,
        debited=debited,
        rate_limit=request.rate_limit,
        rate_remaining=max(0, request.rate_limit - used),
        rate_reset_after=max(0, left) / 1000,
    )


def _bulk(value: str | int) -> bytes:
    """One argument in Redis's wire format (RESP), encoded as redis-py encodes it."""
    data = value.encode() if isinstance(value, str) else b"%d" % value
    return b"$%d\r\n%s\r\n" % (len(data), data)


class AdmissionPacker:
    """``ADMIT_MANY``'s ``EVALSHA`` for a batch, packed in Redis's wire format from parts
    kept per distinct admission (the same keys and limits, whatever the hold): the calls
    of one key to one endpoint share them. Building each call's 8 keys and 9 arguments and
    encoding them anew cost about 4.5 µs of a checked call's CPU; the bytes are the same
    as :func:`admit_arguments` packed by redis-py (tested)."""

    def __init__(self, sha: str, key: Callable[[str], str], ms: Callable[[timedelta], int]) -> None:
        self._head = _bulk("EVALSHA") + _bulk(sha)
        self._key = key
        self._ms = ms
        self._parts: dict[Any, tuple[bytes, bytes, bytes]] = {}
        self._books: dict[str, bytes] = {}

    def pack(self, requests: Sequence[AdmissionRequest]) -> bytes:
        keys: list[bytes] = []
        arguments: list[bytes] = []
        for request in requests:
            held_keys, before_hold, after_hold = self._parts_of(request)
            hold = request.hold
            book = hold.book if hold is not None else _NO_BOOK
            packed_book = self._books.get(book)
            if packed_book is None:
                packed_book = self._books[book] = _bulk(self._key(book))
            keys += (held_keys, packed_book)
            arguments += (before_hold, _bulk(hold.id if hold is not None else ""), after_hold)
        count = 8 * len(requests)
        return b"".join(
            [
                b"*%d\r\n" % (3 + 2 * count + len(requests)),
                self._head,
                _bulk(count),
                *keys,
                *arguments,
            ]
        )

    def _parts_of(self, request: AdmissionRequest) -> tuple[bytes, bytes, bytes]:
        """The request's 7 keys, its arguments before the hold id and the one after."""
        identity = _unheld(request)
        found = self._parts.get(identity)
        if found is None:
            keys, arguments = admit_arguments(request, self._key, self._ms)
            packed = [_bulk(argument) for argument in arguments]
            found = (
                b"".join(_bulk(key) for key in keys[:7]),
                b"".join(packed[:7]),
                packed[8],
            )
            if len(self._parts) >= _MAX_PACKED:
                self._parts.clear()
            self._parts[identity] = found
        return found
