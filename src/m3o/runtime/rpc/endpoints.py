"""Which endpoint of an API a ``/v1`` path names, and the path of each endpoint.

One rule for the public API (``m3o.gateway.v1``, which calls the endpoint), the catalog
(publicapi, whose OpenAPI documents write the paths) and explore (which reads them back).

An API's endpoints are the methods of its protobuf services, each named
``<Service>.<Method>`` with the service's short name. Under ``/v1/<api>/``:

- ``<handler>/<method>`` names ``Title(handler).Title(method)`` (:func:`endpoint_name`);
- ``<method>`` names ``Title(api).Title(method)``, else that method of the API's **main
  service** (:func:`main_service`): the service named like the API, case aside
  (``Helloworld`` of ``helloworld``), else its only service.

A name is looked up as spelled first, then ignoring case, so of two endpoints whose names
differ only in case the one the path spells wins. :func:`endpoint_path` goes the other
way: the path an API's document gives an endpoint.

An endpoint name is two identifiers joined by a dot (:func:`is_endpoint_name`): what
prices and free quotas may name, and what an API without descriptors can be called by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

__all__ = [
    "NamedEndpoint",
    "endpoint_name",
    "endpoint_path",
    "find_endpoint",
    "is_endpoint_name",
    "main_service",
    "short_name",
    "title",
]

_ENDPOINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*")


class NamedEndpoint(Protocol):
    """One method of an API, as the lookup reads it."""

    @property
    def name(self) -> str:
        """``<Service>.<Method>`` (``Helloworld.Call``)."""
        ...

    @property
    def service(self) -> str:
        """The service's full protobuf name (``helloworld.Helloworld``)."""
        ...

    @property
    def method(self) -> str:
        """The method's name (``Call``)."""
        ...


E = TypeVar("E", bound=NamedEndpoint)


def title(word: str) -> str:
    """Upper-case the first letter of each word, leaving the other letters alone.

    Words are split at ASCII characters other than letters, digits and ``_``:
    ``sendEmail`` -> ``SendEmail``, ``a-b`` -> ``A-B``, ``a_b`` -> ``A_b``. (``str.title``
    would lower-case the rest of each word and split at ``_``.)
    """
    out: list[str] = []
    at_start = True
    for ch in word:
        if ch.isascii() and not (ch.isalnum() or ch == "_"):
            out.append(ch)
            at_start = True
        else:
            out.append(ch.upper() if at_start else ch)
            at_start = False
    return "".join(out)


def endpoint_name(handler: str, method: str) -> str:
    """The endpoint name two path parts spell: ``Title(handler).Title(method)``."""
    return f"{title(handler)}.{title(method)}"


def is_endpoint_name(name: str) -> bool:
    """Whether ``name`` is ``<Service>.<Method>``, both ASCII identifiers."""
    return _ENDPOINT_NAME.fullmatch(name) is not None


def short_name(service: str) -> str:
    """A protobuf service's name without its package (``Helloworld``)."""
    return service.rsplit(".", 1)[-1]


def main_service(api: str, services: Iterable[str]) -> str | None:
    """Of ``services`` (full or short names), the one whose short name is ``api`` ignoring
    case, else the only one; None when there is no such service."""
    names = sorted(set(services))
    wanted = api.lower()
    for service in names:
        if short_name(service).lower() == wanted:
            return service
    return names[0] if len(names) == 1 else None


def find_endpoint(
    api: str, endpoints: Sequence[E], handler: str, method: str, *, short: bool
) -> E | None:
    """The endpoint of ``api`` a path names: ``/<api>/<handler>/<method>``, or with
    ``short`` ``/<api>/<method>`` (``handler`` is then the API part as written); None when
    it names none."""
    name = endpoint_name(handler, method)
    for endpoint in endpoints:
        if endpoint.name == name:
            return endpoint
    wanted = name.lower()
    for endpoint in endpoints:
        if endpoint.name.lower() == wanted:
            return endpoint
    if not short:
        return None
    main = main_service(api, (endpoint.service for endpoint in endpoints))
    wanted_method = method.lower()
    for endpoint in endpoints:
        if endpoint.service == main and endpoint.method.lower() == wanted_method:
            return endpoint
    return None


def endpoint_path(api: str, endpoint: NamedEndpoint, main: str | None) -> str:
    """The path of ``endpoint`` under ``/v1`` (``/helloworld/Call``), given the API's main
    service (:func:`main_service`)."""
    if endpoint.service == main:
        return f"/{api}/{endpoint.method}"
    return f"/{api}/{short_name(endpoint.service)}/{endpoint.method}"
