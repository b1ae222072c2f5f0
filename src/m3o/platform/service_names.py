"""The platform's services by name, each loaded only when asked for: a process running one
service (``m3o run usage``) imports that service alone, not the twenty (about half a second
of start-up each).

:mod:`m3o.platform.services` holds every definition, in this order, for what needs them
all (the local profile, the gateway, migrations).
"""

from __future__ import annotations

import importlib

from m3o.runtime.service import ServiceDefinition

__all__ = ["ACCOUNT_NAMES", "NAMES", "definition"]

NAMES: tuple[str, ...] = (
    "auth",
    "customers",
    "emails",
    "alerts",
    "projects",
    "publicapi",
    "explore",
    "balance",
    "stripe",
    "usage",
    "billing",
    "v1",
    "signup",
    "oauth",
    "mailchimp",
    "mixpanel",
    "admin",
    "helloworld",
    "status",
    "endtoend",
)
"""Every service, in start-up order (auth first); ``m3o.services.<name>.service`` holds
its ``definition``."""

_ACCOUNTS = {"admin": "admin-service"}  # "admin" is the operator's account
"""The services whose service account is not their name."""

ACCOUNT_NAMES: tuple[str, ...] = (*(_ACCOUNTS.get(n, n) for n in NAMES), "gateway", "platform")
"""Every name that gets a service account: the services, the HTTP front, the root."""


def definition(name: str) -> ServiceDefinition:
    """The definition of the service ``name``, importing its module; KeyError if there is
    no such service."""
    if name not in NAMES:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(NAMES)}")
    found = importlib.import_module(f"m3o.services.{name}.service").definition
    if not isinstance(found, ServiceDefinition) or found.name != name:
        raise TypeError(f"m3o.services.{name}.service does not define the service {name!r}")
    return found
