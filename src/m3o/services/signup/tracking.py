"""Track and Waitlist: what the signup pages record about visitors."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.exc import IntegrityError

from m3o.runtime.auth import CallContext
from m3o.runtime.clock import Clock
from m3o.runtime.errors import BadRequest
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.signup import records
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.records import TrackRecord
from m3o.services.signup.settings import check_email

__all__ = ["MAX_ID_LENGTH", "MAX_REFERRER_LENGTH", "Tracking"]

MAX_ID_LENGTH = 255
MAX_REFERRER_LENGTH = 2048
_SAVE_ATTEMPTS = 2


class Tracking:
    """Track and Waitlist of ``signup.Signup``."""

    def __init__(self, *, sessions: SessionFactory, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def track(self, request: pb.TrackRequest, ctx: CallContext) -> pb.TrackResponse:
        track_id = request.id.strip()
        if not track_id:
            raise BadRequest(ctx.endpoint, "Missing ID param")
        if len(track_id) > MAX_ID_LENGTH:
            raise BadRequest(ctx.endpoint, f"ID param is longer than {MAX_ID_LENGTH} characters")
        email = check_email(ctx, request.email) if request.email.strip() else ""
        if len(request.referrer) > MAX_REFERRER_LENGTH:
            raise BadRequest(
                ctx.endpoint, f"referrer is longer than {MAX_REFERRER_LENGTH} characters"
            )
        times = {
            "firstVisit": request.firstVisit,
            "firstVerification": request.firstVerification,
            "registration": request.registration,
        }
        for name, value in times.items():
            if value < 0:
                raise BadRequest(ctx.endpoint, f"{name} must not be negative")
        for attempt in range(1, _SAVE_ATTEMPTS + 1):
            try:
                await self._merge(track_id, email, request)
                break
            except IntegrityError:
                # A concurrent first Track of this id inserted it: merge into that row.
                if attempt == _SAVE_ATTEMPTS:
                    raise
        return pb.TrackResponse()

    async def _merge(self, track_id: str, email: str, request: pb.TrackRequest) -> None:
        now = self._clock()
        async with transaction(self._sessions) as session:
            current = await records.find_track(session, track_id)
            base = current or TrackRecord(
                id=track_id,
                email="",
                first_visit=0,
                first_verification=0,
                registration=0,
                referrer="",
                created=now,
                updated=now,
            )
            merged = replace(
                base,
                email=email or base.email,
                first_visit=request.firstVisit or base.first_visit,
                first_verification=request.firstVerification or base.first_verification,
                registration=request.registration or base.registration,
                referrer=request.referrer or base.referrer,
            )
            if current is not None and merged == current:
                return
            await records.save_track(session, replace(merged, updated=now), new=current is None)

    async def waitlist(self, request: pb.WaitlistRequest, ctx: CallContext) -> pb.WaitlistResponse:
        email = check_email(ctx, request.email, missing="missing email")
        async with transaction(self._sessions) as session:
            await records.add_to_waitlist(session, email, self._clock())
        return pb.WaitlistResponse()
