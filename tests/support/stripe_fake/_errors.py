"""Stripe's error responses, and reading request parameters the way Stripe checks them.

Every error answers ``{"error": {"type", "code", "message", "param", ...}}``:

- 400 ``invalid_request_error``: bad or unknown parameters (``parameter_missing``,
  ``parameter_unknown``, ``parameter_invalid_integer``, ...), and an object named by a
  *parameter* that does not exist (``resource_missing`` with that ``param``);
- 400 ``idempotency_error``: an idempotency key reused with other parameters or endpoint;
- 401 ``invalid_request_error``: no API key, or a wrong one;
- 402 ``card_error``: a declined card (``card_declined`` with a ``decline_code``), or one
  that needs authentication off session (``authentication_required``);
- 404 ``invalid_request_error``: an object named by the *URL* that does not exist
  (``resource_missing``, ``param: "id"``), or a URL Stripe does not have;
- 429 ``invalid_request_error`` with code ``rate_limit``; 500 ``api_error``.

Like Stripe, the result of a request is kept under its idempotency key only once the
endpoint has started work: errors in the parameters themselves are not kept
(``StripeError.kept`` is False for them), so the caller can fix the request and retry
with the same key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "StripeError",
    "bool_param",
    "check_params",
    "dict_param",
    "int_param",
    "list_param",
    "metadata_param",
    "str_param",
]


class StripeError(Exception):
    """An error answer of the fake: an HTTP status and Stripe's error object."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        kept: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = dict(extra or {})
        self.kept = kept
        """Whether the answer is kept under the request's idempotency key."""

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}

    @classmethod
    def api_error(cls) -> StripeError:
        """500: something went wrong on Stripe's end."""
        return cls(500, "api_error", "An unknown error occurred")

    @classmethod
    def rate_limited(cls) -> StripeError:
        """429: too many requests."""
        return cls(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )

    @classmethod
    def card_declined(cls, decline_code: str = "generic_decline") -> StripeError:
        """402: the card was declined (``insufficient_funds``, ``generic_decline``, ...)."""
        message = (
            "Your card has insufficient funds."
            if decline_code == "insufficient_funds"
            else "Your card was declined."
        )
        return cls(402, "card_error", message, code="card_declined", decline_code=decline_code)

    @classmethod
    def invalid(
        cls, message: str, *, param: str | None = None, code: str | None = None
    ) -> StripeError:
        """400 ``invalid_request_error`` once the endpoint has started work."""
        return cls(400, "invalid_request_error", message, param=param, code=code)

    @classmethod
    def bad_param(cls, code: str, message: str, param: str) -> StripeError:
        """400 for the parameters themselves: never kept under an idempotency key."""
        return cls(400, "invalid_request_error", message, code=code, param=param, kept=False)

    @classmethod
    def missing(cls, kind: str, object_id: str, *, param: str | None = None) -> StripeError:
        """No such object: 404 when the URL names it, 400 when parameter ``param`` does."""
        message = f"No such {kind}: '{object_id}'"
        if param is None:
            return cls(404, "invalid_request_error", message, code="resource_missing", param="id")
        return cls(400, "invalid_request_error", message, code="resource_missing", param=param)


def check_params(
    params: dict[str, Any], allowed: frozenset[str], unsupported: frozenset[str]
) -> None:
    """Unknown top-level parameters are refused, as Stripe does, naming the first one;
    parameters Stripe has but the fake does not model are refused saying so."""
    for name in params:
        if name in unsupported:
            raise StripeError.bad_param(
                "parameter_unknown",
                f"The fake Stripe does not model the parameter {name} (Stripe has it): "
                "extend tests/support if a test needs it.",
                name,
            )
        if name not in allowed and name != "expand":
            raise StripeError.bad_param(
                "parameter_unknown", f"Received unknown parameter: {name}", name
            )


def str_param(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise StripeError.bad_param(
                "parameter_missing", f"Missing required param: {name}.", name
            )
        return None
    if not isinstance(value, str):
        raise StripeError.bad_param(
            "parameter_invalid_string", f"Invalid string: {name} must be a string", name
        )
    return value


def int_param(
    params: dict[str, Any], name: str, *, required: bool = False, label: str | None = None
) -> int | None:
    text = str_param(params, name, required=required)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise StripeError.bad_param(
            "parameter_invalid_integer", f"Invalid integer: {text}", label or name
        ) from None


def bool_param(params: dict[str, Any], name: str, *, default: bool = False) -> bool:
    text = str_param(params, name)
    if text is None:
        return default
    if text not in ("true", "false"):
        raise StripeError.bad_param("parameter_invalid_boolean", f"Invalid boolean: {text}", name)
    return text == "true"


def dict_param(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError.bad_param("parameter_invalid_object", f"Invalid object: {name}", name)
    return value


def list_param(params: dict[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise StripeError.bad_param("parameter_invalid_array", f"Invalid array: {name}", name)
    return value


def metadata_param(params: dict[str, Any], current: dict[str, str] | None = None) -> dict[str, str]:
    """``metadata`` merged into ``current``: an empty value removes its key, as in Stripe."""
    merged = dict(current or {})
    if params.get("metadata") == "":
        return {}
    for key, value in dict_param(params, "metadata").items():
        if not isinstance(value, str):
            raise StripeError.bad_param(
                "parameter_invalid_string", f"Invalid string: metadata[{key}]", f"metadata[{key}]"
            )
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
