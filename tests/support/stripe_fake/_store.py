"""The fake Stripe's memory: objects by id, lists, expansion and the events it sends.

Objects are the JSON dictionaries Stripe answers with, kept by id (ids carry Stripe's
prefixes: ``cus_``, ``pm_``, ``pi_``, ...); fields that name another object hold its id
until a request expands them; fields whose names start with ``_`` are the fake's own and
never shown. Every answer is a copy, so neither a test nor a later change can alter an
answer already given.
"""

from __future__ import annotations

import copy
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from support.stripe_fake._errors import StripeError, int_param, list_param, str_param
from support.stripe_fake._webhooks import build_event

__all__ = [
    "LIST",
    "Handler",
    "Obj",
    "Params",
    "RequestContext",
    "Route",
    "StripeStore",
    "list_object",
    "snapshot",
    "takes",
]

Obj = dict[str, Any]
"""A Stripe object as JSON: ``{"id": ..., "object": "customer", ...}``."""

Handler = Callable[..., Obj]
"""An endpoint: ``handler(params, *ids_in_the_path) -> the object answered``."""

_ID_ALPHABET = string.ascii_letters + string.digits

LIST = "limit starting_after ending_before "
"""The parameters of every list endpoint."""


@dataclass(frozen=True)
class Params:
    """The top-level parameters of an endpoint.

    Others are refused as Stripe refuses unknown parameters; ``unsupported`` ones are
    Stripe's but their effect is not modelled: they are refused saying so, rather than
    silently ignored.
    """

    allowed: frozenset[str] = frozenset()
    unsupported: frozenset[str] = frozenset()


def takes(text: str) -> Params:
    """``"amount currency !capture_method"``: ``!`` marks a parameter not modelled."""
    words = text.split()
    return Params(
        frozenset(word for word in words if not word.startswith("!")),
        frozenset(word[1:] for word in words if word.startswith("!")),
    )


@dataclass(frozen=True)
class Route:
    """``"POST /v1/customers/{id}"`` served by ``handler(params, customer_id)``."""

    endpoint: str
    handler: Handler
    params: Params = Params()

    @property
    def method(self) -> str:
        return self.endpoint.split(" ", 1)[0]

    @property
    def template(self) -> str:
        return self.endpoint.split(" ", 1)[1]


@dataclass(frozen=True)
class RequestContext:
    """The API request being served, named in the events it causes (``event.request``)."""

    request_id: str
    idempotency_key: str | None


class StripeStore:
    """Objects, their lists and expansions, and the events that changes send."""

    STATE: ClassVar[tuple[str, ...]] = ("objects", "events")
    """The attributes holding what the fake remembers; each layer adds its own."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.objects: dict[str, Obj] = {}
        self.events: list[Obj] = []
        self.context: RequestContext | None = None
        # Fields Stripe leaves out unless expanded: (object type, field) -> the list.
        self.includes: dict[tuple[str, str], Callable[[Obj], Obj]] = {}

    def clear(self) -> None:
        for name in self.STATE:
            getattr(self, name).clear()

    def checkpoint(self) -> dict[str, Any]:
        """A copy of everything remembered, for ``restore``."""
        return copy.deepcopy({name: getattr(self, name) for name in self.STATE})

    def restore(self, saved: dict[str, Any]) -> None:
        """Back to a ``checkpoint``: a request that fails leaves nothing behind."""
        for name, value in saved.items():
            setattr(self, name, value)

    @staticmethod
    def new_id(prefix: str) -> str:
        return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))

    def add(self, obj: Obj) -> Obj:
        self.objects[obj["id"]] = obj
        return obj

    def base(self, prefix: str, kind: str, **fields: Any) -> Obj:
        """A new object of ``kind`` with Stripe's common fields, stored."""
        obj: Obj = {"id": self.new_id(prefix), "object": kind, "created": self.clock()}
        obj.update(fields)
        obj.setdefault("livemode", False)
        return self.add(obj)

    def get(self, kind: str, object_id: str, *, label: str, param: str | None = None) -> Obj:
        """The ``kind`` object ``object_id``; a missing one is 404 (URL) or 400 (``param``)."""
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise StripeError.missing(label, object_id, param=param)
        return obj

    def of_kind(self, kind: str) -> list[Obj]:
        """Every ``kind`` object, newest first (Stripe's list order)."""
        return [obj for obj in reversed(self.objects.values()) if obj["object"] == kind]

    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Records the event Stripe would send about ``obj`` now."""
        context = self.context
        event = build_event(
            event_type,
            self.render(obj, []),
            created=self.clock(),
            event_id=self.new_id("evt"),
            previous_attributes=previous,
            request_id=context.request_id if context else None,
            idempotency_key=context.idempotency_key if context else None,
        )
        self.events.append(event)
        return event

    def routes(self) -> list[Route]:
        """What this layer serves; each layer adds its own to its parent's."""
        return [
            Route("GET /v1/events", self.list_events, takes(LIST + "type types !created")),
            Route("GET /v1/events/{id}", self.retrieve_event),
        ]

    def retriever(self, kind: str, label: str) -> Handler:
        """``GET /v1/<things>/<id>``: the ``kind`` object, 404 ``No such <label>`` if none."""

        def retrieve(params: dict[str, Any], object_id: str) -> Obj:
            return self.get(kind, object_id, label=label)

        return retrieve

    def filtered(
        self,
        kind: str,
        params: dict[str, Any],
        fields: tuple[str, ...],
        read: dict[str, Callable[[Obj], Any]] | None = None,
    ) -> Obj:
        """A page of the ``kind`` objects whose ``fields`` equal the parameters so named
        (a field is read by ``read[name]`` if there is one, else by its name)."""
        wanted = {name: str_param(params, name) for name in fields}
        readers = read or {}
        found = [
            obj
            for obj in self.of_kind(kind)
            if all(
                value is None or readers.get(name, lambda o, n=name: o.get(n))(obj) == value
                for name, value in wanted.items()
            )
        ]
        return self.page(found, params, f"/v1/{kind.replace('.', '/')}s")

    def list_events(self, params: dict[str, Any]) -> Obj:
        kinds = {str_param(params, "type")} - {None}
        kinds |= {str(kind) for kind in list_param(params, "types")}
        found = [e for e in reversed(self.events) if not kinds or e["type"] in kinds]
        return self.page(found, params, "/v1/events")

    def retrieve_event(self, params: dict[str, Any], event_id: str) -> Obj:
        for event in self.events:
            if event["id"] == event_id:
                return event
        raise StripeError.missing("event", event_id)

    def page(self, items: Iterable[Obj], params: dict[str, Any], url: str) -> Obj:
        """One page of a list, cut by ``limit`` (1-100, default 10), ``starting_after``,
        ``ending_before``."""
        everything = list(items)
        limit = int_param(params, "limit")
        if limit is None:
            limit = 10
        if not 1 <= limit <= 100:
            raise StripeError.bad_param(
                "parameter_invalid_integer",
                "This value must be greater than or equal to 1 and less than or equal to 100.",
                "limit",
            )
        after = str_param(params, "starting_after")
        before = str_param(params, "ending_before")
        ids = [obj["id"] for obj in everything]
        if after is not None:
            everything = everything[_index(ids, after, "starting_after") + 1 :]
            selected, more = everything[:limit], len(everything) > limit
        elif before is not None:
            everything = everything[: _index(ids, before, "ending_before")]
            selected, more = everything[-limit:], len(everything) > limit
        else:
            selected, more = everything[:limit], len(everything) > limit
        return list_object(selected, url, has_more=more)

    def render(self, obj: Obj, expand: list[str]) -> Obj:
        """A copy of ``obj`` with the ``expand`` paths (``customer``, ``data.customer``,
        ``latest_invoice.payments``) replaced by their objects; unknown paths are ignored."""
        rendered = snapshot(obj)
        for path in expand:
            self._expand(rendered, path.split("."))
        return rendered

    def _expand(self, node: Obj, parts: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if node.get("object") == "list" and head == "data":
            for item in node["data"]:
                if rest:
                    self._expand(item, rest)
            return
        include = self.includes.get((str(node.get("object")), head))
        if include is not None:
            node[head] = include(node)
        value = node.get(head)
        if isinstance(value, str) and value in self.objects:
            value = node[head] = snapshot(self.objects[value])
        if isinstance(value, dict) and rest:
            self._expand(value, rest)


def snapshot(obj: Obj) -> Obj:
    """A deep copy of ``obj`` without the fake's own ``_`` fields."""
    return {key: copy.deepcopy(value) for key, value in obj.items() if not key.startswith("_")}


def list_object(items: list[Obj], url: str, *, has_more: bool = False) -> Obj:
    data = [snapshot(item) for item in items]
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def _index(ids: list[str], object_id: str, param: str) -> int:
    try:
        return ids.index(object_id)
    except ValueError:
        raise StripeError.invalid(
            f"No such object: '{object_id}'", param=param, code="resource_missing"
        ) from None
