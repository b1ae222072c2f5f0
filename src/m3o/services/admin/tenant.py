"""Tenant ids: ``micro/<customer id>``, the reference's namespace and customer."""

from __future__ import annotations

__all__ = ["NAMESPACE", "customer_of", "tenant_of"]

NAMESPACE = "micro"
_MAX_ID = 255


def tenant_of(customer_id: str) -> str:
    return f"{NAMESPACE}/{customer_id}"


def customer_of(tenant_id: str) -> str | None:
    """The customer id of ``micro/<id>`` (or of a bare id); None for anything else."""
    namespace, slash, customer_id = tenant_id.rpartition("/")
    if slash and namespace != NAMESPACE:
        return None
    if not customer_id or len(customer_id) > _MAX_ID or customer_id != customer_id.strip():
        return None
    return customer_id
