"""Secrets never reach the log: fields named for a secret are redacted at any depth, and
bearer tokens or API keys inside text are masked; other fields are shown as they are."""

from __future__ import annotations

from typing import Any

import pytest

from m3o.runtime.logging import redact


def _logged(**fields: Any) -> dict[str, Any]:
    return dict(redact(None, "info", {"event": "something.happened", **fields}))


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "new_password",
        "PASSWORD",
        "pass",
        "old_pass",
        "passwd",
        "passphrase",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "code",
        "verification_code",
        "key",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "key_pepper",
        "signature",
        "credentials",
    ],
)
def test_a_field_named_for_a_secret_is_redacted(name: str) -> None:
    assert _logged(**{name: "s3cr3t"})[name] == "[redacted]"


@pytest.mark.parametrize(
    "name",
    ["passed", "bypass", "compass", "status_code", "key_id", "api_key_id", "outcome", "email"],
)
def test_other_fields_are_shown(name: str) -> None:
    assert _logged(**{name: "visible"})[name] == "visible"


def test_secrets_are_redacted_at_any_depth() -> None:
    logged = _logged(request={"user": "ann", "auth": {"token": "t"}, "items": [{"secret": "s"}]})
    assert logged["request"] == {
        "user": "ann",
        "auth": {"token": "[redacted]"},
        "items": [{"secret": "[redacted]"}],
    }


def test_bearer_tokens_and_api_keys_inside_text_are_masked() -> None:
    logged = _logged(detail="sent Bearer abc.def.ghi with m3o_0123456789abcdef")
    assert logged["detail"] == "sent Bearer [redacted] with [redacted]"
    event = redact(None, "info", {"event": "called with Bearer abc.def"})["event"]
    assert event == "called with Bearer [redacted]"
    m3o_key = "ZDc2NmRiMTYtZWRjNS00ZDMzLTg3ZTAtNWE4OGM0OWYwM2I4"  # base64 of a uuid
    assert _logged(detail=f"key {m3o_key}.")["detail"] == "key [redacted]."
    assert _logged(detail=m3o_key)["detail"] == "[redacted]"  # the shortest text checked
    assert _logged(detail="Bearer x")["detail"] == "Bearer [redacted]"
    sha256 = "c34b09ed5e635070f89c7108d819a75bda11bd8eecfbc0e322de0fd496d2c5f4"
    assert _logged(detail=f"hash {sha256}")["detail"] == f"hash {sha256}"
