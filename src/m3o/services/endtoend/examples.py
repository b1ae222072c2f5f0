"""The examples a run calls: those of a published API's ``examples_json`` marked
``run_check``.

``examples_json`` maps each endpoint name to a list of examples ``{title, description,
request, response, run_check}``. They are called in the document's order, endpoint by
endpoint, so an example may rely on an earlier one (create before read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Example", "checked_examples"]


@dataclass(frozen=True, slots=True)
class Example:
    endpoint: str
    """Endpoint name as ``/v1/<api>/<endpoint>`` takes it (``call``)."""
    title: str
    request: Any
    """The JSON request sent."""


def checked_examples(document: str) -> list[Example]:
    """The examples of ``document`` marked ``run_check``, in order; none for an empty
    document. Raises ValueError when the document is not a JSON object of lists."""
    if not document.strip():
        return []
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        raise ValueError("examples_json is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise ValueError("examples_json is not a JSON object")
    found: list[Example] = []
    for endpoint, examples in parsed.items():
        if not isinstance(examples, list):
            raise ValueError(f"examples of {endpoint} are not a list")
        for example in examples:
            if isinstance(example, dict) and example.get("run_check") is True:
                found.append(
                    Example(
                        endpoint=str(endpoint),
                        title=str(example.get("title", "")),
                        request=example.get("request", {}),
                    )
                )
    return found
