"""Cheap Argon2id for the platforms the tests start.

Auth hashes every stored secret with Argon2id, deliberately slow: with the defaults (64 MiB,
3 passes, 4 lanes) one hash or check took 160 ms of the 2-core machine's both cores, and the
tests that open the whole platform (the console, the platform profile's processes, `m3o
serve`) spent most of their CPU there: the console, admin and tracing tests took 100 s with
the defaults and 40 to 47 s with these settings. Every platform the suite starts gets them
through ``auth.password_hash`` (the environment); what the defaults are, and that the
configured cost is the one used, is tested in ``tests/services/auth/test_service.py``.
"""

from __future__ import annotations

__all__ = ["CHEAP_PASSWORD_HASH"]

CHEAP_PASSWORD_HASH = {
    "M3O_AUTH__PASSWORD_HASH__TIME_COST": "1",
    "M3O_AUTH__PASSWORD_HASH__MEMORY_COST": "1024",
    "M3O_AUTH__PASSWORD_HASH__PARALLELISM": "1",
}
"""``auth.password_hash`` in the environment: one pass over 1 MiB, one lane."""
