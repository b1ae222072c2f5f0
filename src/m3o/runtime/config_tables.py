"""Tables owned by the runtime (placeholder until defined)."""

from m3o.runtime.store import new_metadata

__all__ = ["metadata"]

metadata = new_metadata()
