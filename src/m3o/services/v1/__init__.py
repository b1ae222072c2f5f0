"""The v1 service: API keys for the public API, and what the gateway reads of them.

The gateway's hot path uses only what is exported here: the key format and hash, and
those of the keys imported from M3O (``keys/format.py``), and the key records mirrored
into the counter store with the per-project rate-limit key (``view.py``).
"""

from m3o.services.v1.keys.format import hash_key, is_legacy_form, is_well_formed, legacy_hash
from m3o.services.v1.view import (
    RATE_WINDOW,
    KeyRecord,
    KeyStatus,
    mirror_name,
    rate_key,
    read_key_record,
)

__all__ = [
    "RATE_WINDOW",
    "KeyRecord",
    "KeyStatus",
    "hash_key",
    "is_legacy_form",
    "is_well_formed",
    "legacy_hash",
    "mirror_name",
    "rate_key",
    "read_key_record",
]
