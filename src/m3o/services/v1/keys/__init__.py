"""API keys: what a key is, and the steps that change keys beyond their rows.

- ``format.py``: the key format, its checksum and the keyed hash that is all we store;
- ``mirror.py``: writing the counter-store copy of key records the gateway reads
  (``m3o.services.v1.view`` reads it);
- ``changes.py``: deleting keys and changing their status, in an order that survives
  failures (what RPCs and consumers share);
- ``events.py``: the ``customers`` events published about keys.

The rows themselves are read and written in ``m3o.services.v1.records``.
"""
