"""The framework every service runs on (Micro's role in the reference).

A few packages, each with a small public surface and its backends kept apart:

- ``service``: defining a service (what it serves, consumes, runs on a schedule, needs);
- ``rpc``: method descriptions, the dispatcher, the in-process and gRPC transports, the
  JSON mapping clients speak, and the building blocks of generated fakes;
- ``errors``: error kinds and their gRPC / HTTP forms;
- ``auth``: the caller's account, token authentication and access rules;
- ``store``: the database engine, migrations and the Redis client;
- ``events``: publish through a transactional outbox, consume in groups;
- ``counters``: atomic counters and the gateway's admission;
- ``config``: typed configuration sections and the config store;
- small shared rules services would otherwise copy: ``clock``, ``email_address``,
  ``money``, ``blocking``, ``logging``.

What is public is pinned by ``tests/runtime/test_public_surface.py``; modules whose names
start with ``_`` are private to their package. The ``sqlite`` and ``redis`` backends of
events and counters are chosen by ``m3o.platform`` alone.
"""
