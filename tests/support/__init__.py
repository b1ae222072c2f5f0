"""Support code of the test suite, imported by tests and never by ``m3o``.

Importable from any test as ``support.<module>`` (pytest's ``pythonpath`` includes
``tests``):

- ``backends``: the databases and Redis every storage test runs on (``engine`` and
  ``redis`` in ``tests/conftest.py`` are built on it).
- ``servers``: which PostgreSQL and Redis the run uses: configured, the machine's, or
  throwaway ones (``throwaway_postgres``, ``throwaway_redis``) started for the run.
- ``services``: the harness of the service tests: clocks, stand-ins for the services a
  service calls and for its callers, its runtime dependencies, serving it in process.
- ``platform``: `m3o` processes for the platform tests (``tests/platform``).
- ``ports``: free ports for the servers tests start.
- ``metric_samples``: reading a Prometheus ``/metrics`` page.
- ``stripe_fake``: a local fake of Stripe's HTTP API and webhook signing.

Helpers of one folder's tests stay beside them (``tests/services/<name>/support.py``,
``tests/gateway/support.py``).
"""
