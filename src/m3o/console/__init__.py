"""The console: the web pages where people sign up, manage their keys, watch their usage,
pay, and where admins look after customers. Served by the HTTP front at ``/console/``
(``/`` redirects there), rendered on the server from Jinja2 templates, calling the same
services as the platform API with the signed-in person's token. See ``README.md``."""

from m3o.console.routes import console_routes, console_settings
from m3o.console.web import ConsoleSettings

__all__ = ["ConsoleSettings", "console_routes", "console_settings"]
