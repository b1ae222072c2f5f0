"""The oauth service: sign up and log in with Google or GitHub.

:class:`Oauth` implements ``oauth.Oauth``. The URL methods hand out the provider's
authorization URL with a signed, expiring ``state`` (``state.py``). The login methods check
what the provider sent back, in this order: the state (Forbidden when forged, issued for
the other provider or expired), the provider's error (``user_denied``: BadRequest), the
code (missing: BadRequest); then the provider (``google.py``, ``github.py``) exchanges the
code and gives the verified email (exchange failures: BadRequest; no verified email:
Forbidden), and ``signin.py`` turns that email into a session.
"""

from __future__ import annotations

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import BadRequest, Forbidden, Unavailable
from m3o.runtime.logging import get_logger
from m3o.services.oauth.proto import oauth_pb2 as pb
from m3o.services.oauth.providers import (
    NoVerifiedEmail,
    OAuthApp,
    Provider,
    ProviderError,
    ProviderSettings,
    title,
)
from m3o.services.oauth.signin import SignIn
from m3o.services.oauth.state import StateSigner

__all__ = ["CODE_NOT_FOUND", "NO_VERIFIED_EMAIL", "USER_DENIED", "Oauth"]

_log = get_logger(__name__)

USER_DENIED = "user has denied permission"
CODE_NOT_FOUND = "code not found"
NO_VERIFIED_EMAIL = "no verified email"
_AUTHORIZATION_FAILED = "authorization failed"
# "user_denied" is what M3O's front end sends; "access_denied" is OAuth's own word for it.
_DENIALS = frozenset({"user_denied", "access_denied"})


class Oauth:
    """Implements ``oauth.Oauth`` (see ``proto/oauth.proto``)."""

    def __init__(
        self,
        *,
        google: Provider,
        google_settings: ProviderSettings,
        github: Provider,
        github_settings: ProviderSettings,
        state: StateSigner,
        signin: SignIn,
    ) -> None:
        self._google = (google, google_settings)
        self._github = (github, github_settings)
        self._state = state
        self._signin = signin

    async def google_url(
        self, request: pb.GoogleURLRequest, ctx: CallContext
    ) -> pb.GoogleURLResponse:
        return pb.GoogleURLResponse(url=self._url(ctx, *self._google, test=request.test))

    async def google_login(
        self, request: pb.GoogleLoginRequest, ctx: CallContext
    ) -> pb.LoginResponse:
        return await self._login(
            ctx,
            *self._google,
            state=request.state,
            code=request.code,
            error_reason=request.errorReason,
            test=request.test,
        )

    async def github_url(
        self, request: pb.GithubURLRequest, ctx: CallContext
    ) -> pb.GithubURLResponse:
        return pb.GithubURLResponse(url=self._url(ctx, *self._github, test=request.test))

    async def github_login(
        self, request: pb.GithubLoginRequest, ctx: CallContext
    ) -> pb.LoginResponse:
        return await self._login(
            ctx,
            *self._github,
            state=request.state,
            code=request.code,
            error_reason=request.errorReason,
            test=request.test,
        )

    def _url(
        self, ctx: CallContext, provider: Provider, settings: ProviderSettings, *, test: bool
    ) -> str:
        app = _app(ctx, provider, settings, test)
        return provider.authorization_url(app, self._state.issue(provider.name))

    async def _login(
        self,
        ctx: CallContext,
        provider: Provider,
        settings: ProviderSettings,
        *,
        state: str,
        code: str,
        error_reason: str,
        test: bool,
    ) -> pb.LoginResponse:
        self._state.check(state, provider.name, ctx.endpoint)
        if error_reason in _DENIALS:
            raise BadRequest(ctx.endpoint, USER_DENIED)
        if error_reason:
            _log.info(
                "oauth.authorization_failed", provider=provider.name, reason=error_reason[:64]
            )
            raise BadRequest(ctx.endpoint, _AUTHORIZATION_FAILED)
        if not code:
            raise BadRequest(ctx.endpoint, CODE_NOT_FOUND)
        app = _app(ctx, provider, settings, test)
        try:
            email = await provider.verified_email(app, code)
        except ProviderError as exc:
            raise BadRequest(ctx.endpoint, str(exc)) from None
        except NoVerifiedEmail:
            _log.info("oauth.login_refused", provider=provider.name, reason="no_verified_email")
            raise Forbidden(ctx.endpoint, NO_VERIFIED_EMAIL) from None
        return await self._signin.sign_in(ctx, email, provider.name)


def _app(ctx: CallContext, provider: Provider, settings: ProviderSettings, test: bool) -> OAuthApp:
    """The OAuth client to use; Unavailable when the operator has not configured it."""
    app = settings.select(test)
    if not app.configured:
        _log.error("oauth.not_configured", provider=provider.name, test=test)
        raise Unavailable(ctx.endpoint, f"{title(provider.name)} login is not configured")
    return app
