"""The signed, expiring ``state``: what passes and what is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m3o.runtime.errors import Forbidden
from m3o.services.oauth.state import INVALID_STATE, STATE_EXPIRED, StateSigner
from services.oauth.support import START, STATE_KEY
from support.services import MovableClock

ENDPOINT = "oauth.googlelogin"


def signer(clock: MovableClock, key: bytes = STATE_KEY) -> StateSigner:
    return StateSigner(key, ttl=timedelta(minutes=10), clock=clock)


def test_a_fresh_state_passes_for_its_provider() -> None:
    clock = MovableClock(START)
    states = signer(clock)
    state = states.issue("google")
    clock.advance(timedelta(minutes=9, seconds=59))
    states.check(state, "google", ENDPOINT)


def test_every_state_is_different() -> None:
    states = signer(MovableClock(START))
    assert states.issue("google") != states.issue("google")


def test_a_state_issued_by_another_process_with_the_same_key_passes() -> None:
    clock = MovableClock(START)
    signer(clock).check(signer(clock).issue("github"), "github", ENDPOINT)


def test_a_state_for_the_other_provider_is_forbidden() -> None:
    states = signer(MovableClock(START))
    with pytest.raises(Forbidden) as caught:
        states.check(states.issue("github"), "google", ENDPOINT)
    assert caught.value == Forbidden(ENDPOINT, INVALID_STATE)


def test_an_expired_state_is_forbidden() -> None:
    clock = MovableClock(START)
    states = signer(clock)
    state = states.issue("google")
    clock.advance(timedelta(minutes=10, seconds=1))
    with pytest.raises(Forbidden) as caught:
        states.check(state, "google", ENDPOINT)
    assert caught.value == Forbidden(ENDPOINT, STATE_EXPIRED)


def test_a_state_from_the_far_future_is_forbidden() -> None:
    clock = MovableClock(START)
    states = signer(clock)
    clock.advance(timedelta(minutes=5))
    state = states.issue("google")
    clock.advance(-timedelta(minutes=5))
    with pytest.raises(Forbidden):
        states.check(state, "google", ENDPOINT)


def _tamper(state: str, index: int, value: str) -> str:
    parts = state.split(".")
    parts[index] = value
    return ".".join(parts)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: _tamper(s, 2, "attacker-nonce"), id="nonce-rewritten"),
        pytest.param(lambda s: _tamper(s, 3, "9999999999"), id="issue-time-extended"),
        pytest.param(lambda s: _tamper(s, 4, "A" * 43), id="signature-replaced"),
        pytest.param(lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), id="signature-edited"),
        pytest.param(lambda s: s.rsplit(".", 1)[0], id="signature-removed"),
        pytest.param(lambda s: "", id="empty"),
        pytest.param(lambda s: "not-a-state", id="garbage"),
        pytest.param(lambda s: "v2" + s[2:], id="other-version"),
        pytest.param(lambda s: s + ".extra", id="extra-part"),
    ],
)
def test_a_tampered_state_is_forbidden(tamper: object) -> None:
    states = signer(MovableClock(START))
    state = states.issue("github")
    assert callable(tamper)
    with pytest.raises(Forbidden) as caught:
        states.check(tamper(state), "github", ENDPOINT)
    assert caught.value.detail == INVALID_STATE


def test_a_state_rewritten_for_the_other_provider_is_forbidden() -> None:
    states = signer(MovableClock(START))
    rewritten = _tamper(states.issue("github"), 1, "google")
    with pytest.raises(Forbidden) as caught:
        states.check(rewritten, "google", ENDPOINT)
    assert caught.value.detail == INVALID_STATE


def test_a_state_signed_with_another_key_is_forbidden() -> None:
    clock = MovableClock(START)
    forged = signer(clock, b"someone-else's-key").issue("google")
    with pytest.raises(Forbidden):
        signer(clock).check(forged, "google", ENDPOINT)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        StateSigner(b"")
