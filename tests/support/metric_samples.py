"""Reading a Prometheus text exposition in tests (``/metrics`` of the HTTP front and of a
service process)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["samples"]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of the samples called ``name``, by their labels sorted by name."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found
