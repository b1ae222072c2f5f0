"""How many projects a billing account may have: config ``billing.project_limits``."""

from __future__ import annotations

from collections.abc import Mapping

from m3o.services.projects.records import DEFAULT_TIER

__all__ = ["project_limit"]


def project_limit(limits: Mapping[str, int], tier: str) -> int:
    """The limit of ``tier``; a tier not configured gets the free tier's (0 if none)."""
    return limits.get(tier, limits.get(DEFAULT_TIER, 0))
