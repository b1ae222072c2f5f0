"""Building blocks of the generated fakes (``services/<name>/proto/fakes.py``).

Each method of a fake client is a :class:`FakeUnary` (or :class:`FakeStream`): it records
every call and returns, or raises, what the test set::

    customers = FakeCustomersClient()
    customers.read.returns(ReadResponse(customer=...))
    await handler.something(...)
    assert customers.read.call_count == 1
    assert customers.read.calls[0].id == "c1"
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

__all__ = ["FakeCall", "FakePublisher", "FakeStream", "FakeUnary", "PublishedEvent"]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


@dataclass(frozen=True, slots=True)
class FakeCall(Generic[Req]):
    """One recorded call: the request and what went with it."""

    request: Req
    timeout: float | None
    metadata: Mapping[str, str]


class FakeUnary(Generic[Req, Resp]):
    """A recording stand-in for one unary method of a client."""

    def __init__(self, response_type: type[Resp]) -> None:
        self._response_type = response_type
        self._results: list[Resp | BaseException] = []
        self._default: Resp | BaseException | None = None
        self._handler: Callable[[Req], Awaitable[Resp]] | None = None
        self.recorded: list[FakeCall[Req]] = []

    async def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Resp:
        self.recorded.append(FakeCall(request, timeout, dict(metadata or {})))
        if self._results:
            result: Resp | BaseException = self._results.pop(0)
        elif self._handler is not None:
            return await self._handler(request)
        elif self._default is not None:
            result = self._default
        else:
            result = self._response_type()
        if isinstance(result, BaseException):
            raise result
        return result

    def returns(self, response: Resp) -> None:
        """Every call returns ``response`` (after any queued results)."""
        self._default = response

    def raises(self, error: BaseException) -> None:
        """Every call raises ``error`` (after any queued results)."""
        self._default = error

    def returns_once(self, *results: Resp | BaseException) -> None:
        """The next calls return (or raise) these, in order."""
        self._results.extend(results)

    def calls_through(self, handler: Callable[[Req], Awaitable[Resp]]) -> None:
        """Compute each answer with ``handler``."""
        self._handler = handler

    @property
    def call_count(self) -> int:
        return len(self.recorded)

    @property
    def calls(self) -> list[Req]:
        """The requests received, oldest first."""
        return [call.request for call in self.recorded]

    def args_for_call(self, index: int) -> Req:
        return self.recorded[index].request


class FakeStream(Generic[Req, Resp]):
    """A recording stand-in for one server-streaming method of a client."""

    def __init__(self, response_type: type[Resp]) -> None:
        self._response_type = response_type
        self._messages: list[Resp] = []
        self._error: BaseException | None = None
        self.recorded: list[FakeCall[Req]] = []

    def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Resp]:
        self.recorded.append(FakeCall(request, timeout, dict(metadata or {})))
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Resp]:
        for message in self._messages:
            yield message
        if self._error is not None:
            raise self._error

    def yields(self, messages: Iterable[Resp], then_raise: BaseException | None = None) -> None:
        """Each call streams ``messages``, then raises ``then_raise`` if given."""
        self._messages = list(messages)
        self._error = then_raise

    @property
    def call_count(self) -> int:
        return len(self.recorded)

    @property
    def calls(self) -> list[Req]:
        return [call.request for call in self.recorded]


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    topic: str
    event: Message
    in_transaction: bool


class FakePublisher:
    """Records published events instead of writing them anywhere."""

    def __init__(self) -> None:
        self.published: list[PublishedEvent] = []
        self._error: BaseException | None = None

    async def publish(self, topic: str, event: Message, *, session: object | None = None) -> str:
        if self._error is not None:
            raise self._error
        self.published.append(PublishedEvent(topic, event, session is not None))
        return f"fake-event-{len(self.published)}"

    async def publish_many(
        self, topic: str, events: Sequence[Message], *, session: object | None = None
    ) -> list[str]:
        if self._error is not None:
            raise self._error
        return [await self.publish(topic, event, session=session) for event in events]

    def raises(self, error: BaseException) -> None:
        self._error = error

    def events(self, topic: str) -> list[Message]:
        return [p.event for p in self.published if p.topic == topic]
