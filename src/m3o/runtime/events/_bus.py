"""The consumer machinery both event backends share (an :class:`~m3o.runtime.events.EventBus`).

A backend is an :class:`~m3o.runtime.events._source.EventSource`; :class:`Bus` drives its
channels: one fetch loop per subscription with at most ``concurrency`` events being handled
(one task per event, or one per batch for a batch handler), exponential backoff between
attempts, dead letters after the last one, lease renewal while handlers run, and a graceful
stop.

Nothing here ever exits because it has been idle, and nothing retries in a tight loop: a
failing handler waits its backoff, a failing backend (database or Redis outage) makes the
fetch loop wait ``poll_interval`` doubling up to ``outage_backoff_max``.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import socket
from collections import OrderedDict
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from m3o.runtime.events import (
    BatchHandler,
    DeadLetter,
    DeadLettered,
    DeadLetterHook,
    Delivery,
    EventHandler,
    Publisher,
)
from m3o.runtime.events._dead_letters import describe_failure, list_dead_letters, take_for_replay
from m3o.runtime.events._outbox import TransactionalPublisher, check_name
from m3o.runtime.events._source import Channel, Claim, EventSource
from m3o.runtime.logging import get_logger
from m3o.runtime.logging.tracing import consumer_batch_span, consumer_span, tracing_on
from m3o.runtime.store import SessionFactory, transaction

__all__ = ["Bus", "retry_delay"]

_log = get_logger(__name__)

RECENT_IDS = 10_000
"""Event ids each subscription remembers having handled, to skip relayed duplicates."""


def retry_delay(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """The wait after failed attempt ``attempt``: ``base * 2**(attempt-1)``, up to 25% more
    (jitter, so failures do not retry in lockstep), never more than ``cap``."""
    growth = 2.0 ** min(max(attempt - 1, 0), 60)
    jitter = 1 + 0.25 * random.random()  # noqa: S311 - spreading retries, not security
    return min(cap, base * growth * jitter)


@dataclass(eq=False)
class _Subscription:
    topic: str
    group: str
    handler: EventHandler | None
    batch_handler: BatchHandler | None
    """One of the two is set."""
    channel: Channel
    max_attempts: int
    backoff_base: timedelta
    backoff_max: timedelta
    concurrency: int
    """The most events being handled at once (for a batch handler, the largest batch)."""
    from_beginning: bool
    linger: float = 0.0
    ready: bool = False
    running: dict[asyncio.Task[None], tuple[Claim, ...]] = field(default_factory=dict)
    in_flight: int = 0
    """The claims of ``running``, counted."""
    running_ids: dict[str, int] = field(default_factory=dict)
    """How many of ``running``'s claims are of each event id (a set, with copies counted)."""
    retrying: set[str] = field(default_factory=set)
    """Event ids whose handling failed and was given a retry, while the failed handling's
    task is still running: a claim of one is the retry, not a copy."""
    retries: list[datetime] = field(default_factory=list)
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def remember(self, *event_ids: str) -> None:
        """Keep the ids of events handled (the newest :data:`RECENT_IDS`)."""
        recent = self.recent
        recent.update(dict.fromkeys(event_ids))
        while len(recent) > RECENT_IDS:
            recent.popitem(last=False)

    def is_duplicate(self, event_id: str) -> bool:
        if event_id in self.recent:
            return True
        return event_id in self.running_ids and event_id not in self.retrying

    def started(self, task: asyncio.Task[None], claims: tuple[Claim, ...]) -> None:
        self.running[task] = claims
        self.in_flight += len(claims)
        for claim in claims:
            event_id = claim.delivery.id
            self.running_ids[event_id] = self.running_ids.get(event_id, 0) + 1
            self.retrying.discard(event_id)  # the retry is being handled: later ones are copies

    def finished(self, task: asyncio.Task[None]) -> None:
        claims = self.running.pop(task, ())
        self.in_flight -= len(claims)
        for claim in claims:
            event_id = claim.delivery.id
            left = self.running_ids.pop(event_id, 1) - 1
            if left:
                self.running_ids[event_id] = left
            else:
                self.retrying.discard(event_id)


class Bus:
    """An :class:`~m3o.runtime.events.EventBus` over an :class:`EventSource`."""

    def __init__(
        self,
        sessions: SessionFactory,
        source: EventSource,
        *,
        poll_interval: float = 1.0,
        renew_every: float = 20.0,
        outage_backoff_max: float = 10.0,
        consumer: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._source = source
        self._poll = poll_interval
        self._renew_every = renew_every
        self._outage_max = outage_backoff_max
        self._consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:8]}"
        self._publisher = TransactionalPublisher(sessions, source.write, self.committed)
        self._subs: list[_Subscription] = []
        self._retiring: list[tuple[str, str]] = []
        self._dead_letter_hooks: list[DeadLetterHook] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        """Set when stopping begins: no more fetching."""
        self._closing = asyncio.Event()
        """Set once handlers are done: background work ends."""
        self._state = "new"

    @property
    def publisher(self) -> Publisher:
        return self._publisher

    @property
    def consumer(self) -> str:
        """This bus's consumer name within its groups."""
        return self._consumer

    def subscribe(
        self,
        topic: str,
        group: str,
        handler: EventHandler,
        *,
        max_attempts: int = 8,
        backoff_base: timedelta = timedelta(seconds=1),
        backoff_max: timedelta = timedelta(minutes=5),
        concurrency: int = 1,
        from_beginning: bool = False,
    ) -> None:
        self._add(
            topic,
            group,
            handler,
            None,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            concurrency=concurrency,
            from_beginning=from_beginning,
        )

    def subscribe_batch(
        self,
        topic: str,
        group: str,
        handler: BatchHandler,
        *,
        max_batch: int = 64,
        linger: timedelta = timedelta(0),
        max_attempts: int = 8,
        backoff_base: timedelta = timedelta(seconds=1),
        backoff_max: timedelta = timedelta(minutes=5),
        from_beginning: bool = False,
    ) -> None:
        if linger < timedelta(0):
            raise ValueError("linger cannot be negative")
        self._add(
            topic,
            group,
            None,
            handler,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            concurrency=max_batch,
            from_beginning=from_beginning,
            linger=linger.total_seconds(),
        )

    def _add(
        self,
        topic: str,
        group: str,
        handler: EventHandler | None,
        batch_handler: BatchHandler | None,
        *,
        max_attempts: int,
        backoff_base: timedelta,
        backoff_max: timedelta,
        concurrency: int,
        from_beginning: bool,
        linger: float = 0.0,
    ) -> None:
        if self._state != "new":
            raise RuntimeError("subscribe before the bus starts")
        check_name("topic", topic)
        check_name("group", group)
        if max_attempts < 1 or concurrency < 1:
            raise ValueError("max_attempts and concurrency (max_batch) must be at least 1")
        if self._subscribed(topic, group):
            raise ValueError(f"already subscribed to {topic} as {group}")
        if (topic, group) in self._retiring:
            raise ValueError(f"{group} of {topic} is being retired")
        self._subs.append(
            _Subscription(
                topic=topic,
                group=group,
                handler=handler,
                batch_handler=batch_handler,
                channel=self._source.channel(topic, group, self._consumer),
                max_attempts=max_attempts,
                backoff_base=backoff_base,
                backoff_max=backoff_max,
                concurrency=concurrency,
                from_beginning=from_beginning,
                linger=linger,
            )
        )

    def retire(self, topic: str, group: str) -> None:
        if self._state != "new":
            raise RuntimeError("retire a group before the bus starts")
        check_name("topic", topic)
        check_name("group", group)
        if self._subscribed(topic, group):
            raise ValueError(f"subscribed to {topic} as {group}: it cannot be retired")
        if (topic, group) not in self._retiring:
            self._retiring.append((topic, group))

    def _subscribed(self, topic: str, group: str) -> bool:
        return any(s.topic == topic and s.group == group for s in self._subs)

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError("an event bus starts once")
        self._state = "running"
        for topic, group in self._retiring:
            try:
                await self._source.retire(topic, group)
            except Exception as exc:  # noqa: BLE001 - tried again at the next start
                _log.warning("events.retire_failed", topic=topic, group=group, error=repr(exc))
        for sub in self._subs:
            await self._setup(sub)
        self._spawn(self._supervise(), "events:background")
        self._spawn(self._renew_loop(), "events:renew")
        for sub in self._subs:
            worker = asyncio.create_task(self._consume(sub), name=f"events:{sub.group}")
            self._workers.append(worker)

    async def stop(self, timeout: float = 30.0) -> None:
        if self._state != "running":
            return
        self._state = "stopped"
        self._stop.set()
        for sub in self._subs:
            sub.changed.set()
            sub.channel.wake()
        await asyncio.gather(*self._workers, return_exceptions=True)
        running = {
            task: (sub, claims) for sub in self._subs for task, claims in sub.running.items()
        }
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            for task in late:
                sub, claims = running[task]
                for claim in claims:
                    _log.warning("events.handler_cancelled", **_about(sub, claim))
                    await self._settle(sub, (claim,), sub.channel.release(claim))
        for sub in self._subs:
            await self._settle(sub, (), sub.channel.close())
        self._closing.set()
        _, late = await asyncio.wait(self._tasks, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._source.flush()
        except Exception as exc:  # noqa: BLE001 - what is not relayed stays in the outbox
            _log.warning("events.flush_failed", error=repr(exc))

    async def wait_idle(self, timeout: float = 10.0) -> None:
        failure: Exception | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        if await self._idle():
                            return
                    except Exception as exc:  # noqa: BLE001 - an outage is "not idle yet"
                        failure = exc
                    await asyncio.sleep(min(self._poll, 0.02))
        except TimeoutError as exc:
            raise TimeoutError("events were still being handled") from failure or exc

    async def dead_letters(
        self,
        *,
        topic: str | None = None,
        group: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> list[DeadLetter]:
        return await list_dead_letters(
            self._sessions,
            topic=topic,
            group=group,
            include_replayed=include_replayed,
            limit=limit,
        )

    async def replay_dead_letter(self, dead_letter_id: str) -> None:
        async with transaction(self._sessions) as session:
            letter = await take_for_replay(session, dead_letter_id)
            await self._source.requeue(session, letter)
        _log.info("events.dead_letter_replayed", id=dead_letter_id, event_id=letter.event_id)
        self.committed(letter.topic)

    # -- internals -------------------------------------------------------------------------

    def committed(self, topic: str) -> None:
        """Events of ``topic`` were committed (by :attr:`publisher`, or by a writer of its
        own in a transaction of its own): the consumers are told."""
        self._source.wake(topic)
        for sub in self._subs:
            if sub.topic == topic:
                sub.channel.wake()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _idle(self) -> bool:
        if any(sub.running for sub in self._subs):
            return False
        if await self._source.backlog():
            return False
        for sub in self._subs:
            if await sub.channel.outstanding():
                return False
        return True

    async def _setup(self, sub: _Subscription) -> None:
        try:
            await sub.channel.setup(sub.from_beginning)
        except Exception as exc:  # noqa: BLE001 - the fetch loop sets up again until it works
            _log.warning("events.setup_failed", topic=sub.topic, group=sub.group, error=repr(exc))
        else:
            sub.ready = True

    def _wait_for(self, sub: _Subscription) -> float:
        now = datetime.now(UTC)
        while sub.retries and sub.retries[0] <= now:
            heapq.heappop(sub.retries)
        if not sub.retries:
            return self._poll
        return min(self._poll, (sub.retries[0] - now).total_seconds() + 0.001)

    async def _consume(self, sub: _Subscription) -> None:
        outages = 0
        while not self._stop.is_set():
            room = sub.concurrency - sub.in_flight
            if room <= 0:
                sub.changed.clear()
                await sub.changed.wait()
                continue
            try:
                if not sub.ready:
                    await sub.channel.setup(sub.from_beginning)
                    sub.ready = True
                claims = await sub.channel.fetch(room, self._wait_for(sub))
            except Exception as exc:  # noqa: BLE001 - an outage must not end the consumer
                outages += 1
                delay = min(self._outage_max, self._poll * 2 ** min(outages - 1, 20))
                _log.warning(
                    "events.fetch_failed",
                    topic=sub.topic,
                    group=sub.group,
                    error=repr(exc),
                    retry_in=delay,
                )
                await _wait(self._stop, delay)
                continue
            outages = 0
            if sub.handler is not None:
                for claim in claims:
                    self._dispatch(sub, sub.handler, claim)
            elif sub.batch_handler is not None and claims:
                if len(claims) < room and sub.linger > 0:
                    claims += await self._linger(sub, room - len(claims))
                self._dispatch_batch(sub, sub.batch_handler, claims)

    async def _linger(self, sub: _Subscription, room: int) -> list[Claim]:
        """What arrives within ``sub.linger`` (up to ``room``), to join the batch claimed."""
        if await _wait(self._stop, sub.linger):
            return []
        try:
            return await sub.channel.fetch(room, 0)
        except Exception as exc:  # noqa: BLE001 - the batch goes on with what it has
            _log.warning("events.fetch_failed", topic=sub.topic, group=sub.group, error=repr(exc))
            return []

    def _dispatch(self, sub: _Subscription, handler: EventHandler, claim: Claim) -> None:
        duplicate = sub.is_duplicate(claim.delivery.id)
        self._start(
            sub,
            self._handle(sub, handler, claim, duplicate=duplicate),
            (claim,),
            f"events:{sub.group}:{claim.delivery.id}",
        )

    def _dispatch_batch(
        self, sub: _Subscription, handler: BatchHandler, claims: list[Claim]
    ) -> None:
        fresh: list[Claim] = []
        copies: list[Claim] = []
        ids: set[str] = set()
        for claim in claims:
            event_id = claim.delivery.id
            if sub.is_duplicate(event_id) or event_id in ids:
                copies.append(claim)
            else:
                fresh.append(claim)
                ids.add(event_id)
        handling = self._handle_batch(sub, handler, fresh, copies)
        self._start(sub, handling, tuple(claims), f"events:{sub.group}")

    def _start(
        self,
        sub: _Subscription,
        handling: Coroutine[Any, Any, None],
        claims: tuple[Claim, ...],
        name: str,
    ) -> None:
        task = asyncio.create_task(handling, name=name)
        sub.started(task, claims)

        def _done(finished: asyncio.Task[None]) -> None:
            sub.finished(finished)
            sub.changed.set()

        task.add_done_callback(_done)

    async def _handle(
        self, sub: _Subscription, handler: EventHandler, claim: Claim, *, duplicate: bool
    ) -> None:
        delivery = claim.delivery
        if duplicate:  # a relayed copy of an event this consumer has (or is) handling
            await self._settle(sub, (claim,), sub.channel.ack(claim))
            return
        if delivery.attempt > sub.max_attempts:
            await self._exhausted(sub, claim)
            return
        try:
            name, attributes = _span_of(sub, delivery)
            with consumer_span(name, delivery.traceparent, attributes):
                await handler(delivery)
        except asyncio.CancelledError as exc:
            if _stopping():
                raise  # the bus is stopping: stop() gives the event back
            await self._failed(sub, claim, exc)
        except Exception as exc:  # noqa: BLE001 - a failing handler is retried, never fatal
            await self._failed(sub, claim, exc)
        else:
            sub.remember(delivery.id)
            await self._settle(sub, (claim,), sub.channel.ack(claim))

    async def _handle_batch(
        self,
        sub: _Subscription,
        handler: BatchHandler,
        fresh: list[Claim],
        copies: list[Claim],
    ) -> None:
        """Hand ``fresh`` to the batch handler in one call; acknowledge what it handled
        and the ``copies`` (of events handled or being handled) in one go; retry or
        dead-letter the rest one by one."""
        handling: list[Claim] = []
        for claim in fresh:
            if claim.delivery.attempt > sub.max_attempts:
                await self._exhausted(sub, claim)
            else:
                handling.append(claim)
        failures: Mapping[str, BaseException] = {}
        if handling:
            deliveries = [claim.delivery for claim in handling]
            try:
                name, attributes = _batch_span_of(sub, len(deliveries))
                traceparents = (d.traceparent for d in deliveries) if name else ()
                with consumer_batch_span(name, traceparents, attributes):
                    failures = await handler(deliveries) or {}
            except asyncio.CancelledError as exc:
                if _stopping():
                    raise  # the bus is stopping: stop() gives the events back
                failures = dict.fromkeys((d.id for d in deliveries), exc)
            except Exception as exc:  # noqa: BLE001 - a failing batch is retried, never fatal
                failures = dict.fromkeys((d.id for d in deliveries), exc)
        handled, failed = _outcomes(handling, failures)
        sub.remember(*(claim.delivery.id for claim in handled))
        done = copies + handled
        if done:
            await self._settle(sub, done, sub.channel.ack(*done))
        for claim, error in failed:
            await self._failed(sub, claim, error)

    async def _exhausted(self, sub: _Subscription, claim: Claim) -> None:
        """``claim`` came back once more than ``max_attempts`` (its handler never
        acknowledged it, for example its process died each time): a dead letter."""
        error = f"delivered {claim.delivery.attempt - 1} times without being acknowledged"
        _log.error("events.dead_lettered", **_about(sub, claim), error=error)
        if await self._settle(sub, (claim,), sub.channel.dead_letter(claim, error)):
            await self._tell_dead_lettered(sub, claim, error)

    async def _failed(self, sub: _Subscription, claim: Claim, exc: BaseException) -> None:
        error = describe_failure(exc)
        attempt = claim.delivery.attempt
        if attempt >= sub.max_attempts:
            _log.error("events.dead_lettered", **_about(sub, claim), error=repr(exc))
            if await self._settle(sub, (claim,), sub.channel.dead_letter(claim, error)):
                await self._tell_dead_lettered(sub, claim, repr(exc))
            return
        delay = retry_delay(attempt, sub.backoff_base, sub.backoff_max)
        at = datetime.now(UTC) + delay
        # Before the retry is written: it may be due, and claimed, before this task ends.
        sub.retrying.add(claim.delivery.id)
        _log.warning(
            "events.handler_failed",
            **_about(sub, claim),
            error=repr(exc),
            retry_in=delay.total_seconds(),
        )
        if await self._settle(sub, (claim,), sub.channel.retry(claim, at, error)):
            heapq.heappush(sub.retries, at)

    def on_dead_letter(self, hook: DeadLetterHook) -> None:
        self._dead_letter_hooks.append(hook)

    async def _tell_dead_lettered(self, sub: _Subscription, claim: Claim, error: str) -> None:
        delivery = claim.delivery
        told = DeadLettered(
            topic=sub.topic,
            group=sub.group,
            event_id=delivery.id,
            type_name=delivery.type_name,
            attempts=delivery.attempt,
            error=error.splitlines()[0] if error else "",
        )
        for hook in self._dead_letter_hooks:
            try:
                await hook(told)
            except Exception as exc:  # noqa: BLE001 - telling must never undo the dead letter
                _log.warning(
                    "events.dead_letter_hook_failed", **_about(sub, claim), error=repr(exc)
                )

    async def _settle(
        self, sub: _Subscription, claims: Sequence[Claim], call: Coroutine[Any, Any, None]
    ) -> bool:
        """Run a channel call about ``claims``; on failure log it and let their leases
        lapse."""
        try:
            await call
        except Exception as exc:  # noqa: BLE001 - the event is redelivered when its lease ends
            _log.warning("events.settle_failed", topic=sub.topic, group=sub.group, error=repr(exc))
            for claim in claims:
                sub.channel.forget(claim)
            return False
        return True

    async def _supervise(self) -> None:
        """Keep the source's background work running: log a crash, start it again later."""
        while not self._closing.is_set():
            try:
                await self._source.run(self._closing)
            except Exception as exc:  # noqa: BLE001 - background work must outlive its bugs
                _log.error("events.background_failed", error=repr(exc))
                await _wait(self._closing, self._outage_max)

    async def _renew_loop(self) -> None:
        while not await _wait(self._closing, self._renew_every):
            for sub in self._subs:
                await self._settle(sub, (), sub.channel.renew())


def _outcomes(
    handling: list[Claim], failures: Mapping[str, BaseException]
) -> tuple[list[Claim], list[tuple[Claim, BaseException]]]:
    """The claims a batch handler handled, and those it failed with their errors."""
    if not failures:  # the usual batch: every event handled
        return handling, []
    handled: list[Claim] = []
    failed: list[tuple[Claim, BaseException]] = []
    for claim in handling:
        error = failures.get(claim.delivery.id)
        if error is None:
            handled.append(claim)
        else:
            failed.append((claim, error))
    return handled, failed


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _stopping() -> bool:
    """Whether the running task is being cancelled (by the bus's stop)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


def _about(sub: _Subscription, claim: Claim) -> dict[str, Any]:
    return {
        "topic": sub.topic,
        "group": sub.group,
        "event_id": claim.delivery.id,
        "attempt": claim.delivery.attempt,
    }


def _span_of(sub: _Subscription, delivery: Delivery) -> tuple[str, dict[str, Any]]:
    """The span of handling ``delivery`` (OpenTelemetry's messaging conventions)."""
    return _span_about(
        sub,
        {
            "messaging.message.id": delivery.id,
            "m3o.event.type": delivery.type_name,
            "m3o.event.attempt": delivery.attempt,
        },
    )


def _batch_span_of(sub: _Subscription, size: int) -> tuple[str, dict[str, Any]]:
    """The span of handling a batch of ``size`` events of ``sub``."""
    return _span_about(sub, {"messaging.batch.message_count": size})


def _span_about(sub: _Subscription, about: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if not tracing_on():
        return "", {}
    return f"{sub.topic} process", {
        "messaging.system": "m3o",
        "messaging.operation.type": "process",
        "messaging.destination.name": sub.topic,
        "messaging.consumer.group.name": sub.group,
        **about,
    }
