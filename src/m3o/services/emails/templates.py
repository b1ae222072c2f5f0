"""The email templates we ship, rendered with Jinja2.

Each template is a folder under ``templates/`` with ``subject.txt``, ``text.txt`` and
``html.html``. HTML is autoescaped (a value never becomes markup); every value a template
uses must be given (``StrictUndefined``), so a missing one is an error naming it rather
than an email with a hole. Templates are compiled once, when :class:`Templates` is built,
so rendering never touches the disk.

Values each template reads:

- ``verification``: ``code`` (the plain text carries the sentence the end-to-end check and
  inbound-mail parsing look for);
- ``recovery``: ``token``, and ``reset_url`` when there is a page to open;
- ``welcome``: ``name``, optional;
- ``account_exists``: nothing (told to the owner when someone asks to sign up with an
  address that has an account).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

__all__ = ["SHIPPED", "Rendered", "TemplateDataError", "Templates"]

SHIPPED = ("verification", "recovery", "welcome", "account_exists")
"""The templates this package ships."""

_PARTS = ("subject.txt", "text.txt", "html.html")
_UNDEFINED = re.compile(r"'(.+)' is undefined")


class TemplateDataError(Exception):
    """The data does not fit the template (a value is missing or unusable)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


class Templates:
    """The shipped templates, compiled."""

    def __init__(self) -> None:
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("m3o.services.emails", "templates"),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self._compiled: dict[str, tuple[jinja2.Template, ...]] = {
            name: tuple(environment.get_template(f"{name}/{part}") for part in _PARTS)
            for name in SHIPPED
        }

    def __contains__(self, name: object) -> bool:
        return name in self._compiled

    def render(self, name: str, data: Mapping[str, Any]) -> Rendered:
        """Template ``name`` filled with ``data``.

        Raises KeyError for an unknown template and :class:`TemplateDataError` naming the
        missing value when ``data`` lacks one.
        """
        subject, text, html = self._compiled[name]
        try:
            rendered = [part.render(data) for part in (subject, text, html)]
        except jinja2.UndefinedError as exc:
            missing = _UNDEFINED.fullmatch(exc.message or "")
            what = f"the value {missing.group(1)!r}" if missing else str(exc.message)
            raise TemplateDataError(f"Template {name} needs {what}") from None
        except (jinja2.TemplateError, TypeError, ValueError) as exc:
            raise TemplateDataError(f"Template {name} cannot use this data: {exc}") from None
        # A subject is one header line, whatever the data held.
        one_line = " ".join(rendered[0].split())
        return Rendered(subject=one_line, text=rendered[1].strip() + "\n", html=rendered[2])
