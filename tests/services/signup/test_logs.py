"""No code, token, password or secret is ever handed to the logger."""

from __future__ import annotations

import contextlib

import structlog

from m3o.runtime.errors import Internal, M3OError
from m3o.services.signup.proto import signup_pb2 as pb
from services.signup.support import PASSWORD, World, call, wrong_code


async def test_no_secret_reaches_any_log_even_when_calls_fail(world: World) -> None:
    world.customers.add("bob@example.com", "verified")
    secrets: list[str] = [PASSWORD]
    with structlog.testing.capture_logs() as logs:
        code = await world.start_signup()
        secrets.append(code)
        world.customers.fake.mark_verified.returns_once(Internal("customers", "x"))
        for attempt in (wrong_code(code), code):
            with contextlib.suppress(M3OError):
                await world.verify(attempt)
        await world.verify(code)
        await world.handler.recover(pb.RecoverRequest(email="bob@example.com"), call("Recover"))
        token = world.last_reset_token()
        secrets.append(token)
        world.auth.change_secret.returns_once(Internal("auth", "x"))
        request = pb.ResetPasswordRequest(email="bob@example.com", token=token, password=PASSWORD)
        with contextlib.suppress(M3OError):
            await world.handler.reset_password(request, call("ResetPassword"))
        await world.handler.reset_password(request, call("ResetPassword"))

    assert logs, "the flow logs something"
    text = repr(logs)
    for secret in secrets:
        assert secret not in text
        assert secret.lower() not in text
