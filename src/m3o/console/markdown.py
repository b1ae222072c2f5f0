"""API descriptions (markdown, written by whoever publishes an API) as safe HTML.

markdown-it-py, CommonMark, with raw HTML off (any tag in a description is shown as
written, escaped), images off (the console's policy loads none from other sites, and one
would tell that site who reads the page), links checked by the library (no ``javascript:``
or ``data:``) and marked ``rel="nofollow noopener"``, and headings moved down two levels so
that a description's ``#`` sits under the page's own ``h1`` and ``h2``.
"""

from __future__ import annotations

import itertools

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markupsafe import Markup

__all__ = ["MAX_SUMMARY", "description_html", "summary_of"]

MAX_SUMMARY = 200
"""The longest summary of a catalog card, in characters."""


def _lower_headings_and_mark_links(state: StateCore) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1:]) + 2)}"
        for child in token.children or ():
            if child.type == "link_open":
                child.attrSet("rel", "nofollow noopener")


_RENDERER = MarkdownIt("commonmark", {"html": False}).disable("image")
_RENDERER.core.ruler.push("console_safety", _lower_headings_and_mark_links)


def description_html(markdown: str) -> Markup:
    """``markdown`` rendered for a page."""
    return Markup(_RENDERER.render(markdown))  # noqa: S704 - markdown-it escapes the text


def summary_of(markdown: str) -> str:
    """The first paragraph of ``markdown`` as plain text, at most ``MAX_SUMMARY`` long."""
    tokens = _RENDERER.parse(markdown)
    text = ""
    for before, token in itertools.pairwise(tokens):
        if before.type == "paragraph_open" and token.type == "inline":
            text = " ".join("".join(child.content for child in token.children or ()).split())
            break
    if len(text) > MAX_SUMMARY:
        return text[: MAX_SUMMARY - 1].rstrip() + "…"
    return text
