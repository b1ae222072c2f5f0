"""Admission on the Redis counter store: the rules of :mod:`m3o.runtime.counters.admission` as Lua.

One script run is one admission, atomic in Redis; ``admit_many`` runs ``ADMIT_MANY``, the
same rules for each admission of the batch in turn in one script run (so each sees what the
ones before reserved, and the client packs and parses one command, not one per call).
Each script reads first and writes only once the verdict is known, so a refused call
writes nothing but its rate hit, and ``BALANCE_UNKNOWN`` and ``CAP_UNKNOWN`` not even that.
Counters an admission creates get the request's ``monthly_ttl`` (the rate window:
``rate_window``; cumulative debits: no expiry); counters that exist keep theirs.

Every key of a script must live on one Redis node (the platform runs a single primary).
A call that times out may still have run in Redis: the caller gets ``Unavailable`` and the
reservation, if any, stands (the store fails closed; it never admits twice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    "ADMIT",
    "ADMIT_MANY",
    "COMMIT_MANY",
    "RELEASE",
    "admit_arguments",
    "decision_from_reply",
    "release_arguments",
]

# KEYS: rate, cap, free, endpoint, total, balance, debited, book of holds.
# ARGV: rate limit, rate window ms, cap (-1: none), price, free quota, endpoint quota,
# monthly ttl ms, hold id ('' for none: the book key is then unused), 1 when the cap key
# holds reported units (missing: unknown) else 0.
# An admitted call with a hold is written in the book (hold id -> what a release needs) in
# the same run as its reservation.
# Returns {verdict, charge kind, debited, window count, window ms left}; verdict 0
# admitted, 1 rate limited, 2 cap exceeded, 3 insufficient credit, 4 balance unknown,
# 5 cap unknown;
# charge kind 0 none, 1 free, 2 zero, 3 the price.
_ADMIT_FUNCTION = """
local function admit(K, A)
  local limit = tonumber(A[1])
  local window = tonumber(A[2])
  local cap = tonumber(A[3])
  local price = tonumber(A[4])
  local free_quota = tonumber(A[5])
  local endpoint_quota = tonumber(A[6])
  local monthly = tonumber(A[7])

  if limit <= 0 then
    return {1, 0, 0, 0, window}
  end
  -- A window starts with its first hit; a key without expiry (not a window) starts one too.
  local left = redis.call('PTTL', K[1])
  local used = 0
  local fresh = left < 0
  if fresh then
    left = window
  else
    used = tonumber(redis.call('GET', K[1])) or 0
  end
  if used >= limit then
    return {1, 0, 0, used, left}
  end

  local function hit()
    if fresh then
      redis.call('SET', K[1], 1, 'PX', window)
    else
      redis.call('INCR', K[1])
    end
    return used + 1
  end
  local function value(key)
    return tonumber(redis.call('GET', key)) or 0
  end
  -- One command for a counter that exists (the common case); a 1 with no expiry is one
  -- this call made (or one found at 0 with none), which gets the month's.
  local function count(key)
    if redis.call('INCR', key) == 1 and redis.call('PTTL', key) == -1 then
      redis.call('PEXPIRE', key, monthly)
    end
  end
  local function count_call()
    count(K[5])
    count(K[4])
  end
  local function held(kind, debited)
    if A[8] ~= '' then
      local record = {k = {K[3], K[4], K[5], K[6], K[7]}, f = 0, d = debited}
      if kind == 1 then
        record.f = 1
      end
      redis.call('HSET', K[8], A[8], cjson.encode(record))
    end
    return {0, kind, debited, hit(), left}
  end

  if cap == 0 then
    return {2, 0, 0, hit(), left}
  end
  if cap > 0 then
    local units = redis.call('GET', K[2])
    if not units and A[9] == '1' then
      return {5, 0, 0, used, left}
    end
    if (tonumber(units) or 0) >= cap then
      return {2, 0, 0, hit(), left}
    end
  end
  if price == 0 then
    if value(K[3]) < free_quota then
      count(K[3])
      count_call()
      return held(1, 0)
    end
    price = 1
  end
  if endpoint_quota > 0 and value(K[4]) < endpoint_quota then
    count_call()
    return held(2, 0)
  end
  local balance = redis.call('GET', K[6])
  if not balance then
    return {4, 0, 0, used, left}
  end
  if tonumber(balance) < price then
    return {3, 0, 0, hit(), left}
  end
  redis.call('DECRBY', K[6], price)
  redis.call('INCRBY', K[7], price)
  count_call()
  return held(3, price)
end
"""

ADMIT = (
    _ADMIT_FUNCTION
    + """
return admit(KEYS, ARGV)
"""
)

# KEYS and ARGV: those of ADMIT for each admission in turn (8 keys, 9 arguments each).
# Returns the five numbers of each reply in turn. One run, so one atomic step for all:
# each admission sees what the ones before it reserved.
ADMIT_MANY = (
    _ADMIT_FUNCTION
    + """
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
return out
"""
)

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
# each hold found, 0 for one that is gone (released).
COMMIT_MANY = """
local out = {}
for i = 1, #KEYS do
  local id = ARGV[i * 2 - 1]
  local found = redis.call('HGET', KEYS[i], id)
  if found then
    local record = cjson.decode(found)
    if record.s == nil then
      record.s = ARGV[i * 2]
      redis.call('HSET', KEYS[i], id, cjson.encode(record))
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

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


def decision_from_reply(request: AdmissionRequest, reply: Sequence[Any]) -> AdmissionDecision:
    verdict, kind, debited, used, left = (int(part) for part in reply)
    charge = {0: "", 1: FREE, 2: "0", 3: str(debited)}[kind]
    return AdmissionDecision(
        _VERDICTS[verdict],
        charge=charge,
        debited=debited,
        rate_limit=request.rate_limit,
        rate_remaining=max(0, request.rate_limit - used),
        rate_reset_after=max(0, left) / 1000,
    )
