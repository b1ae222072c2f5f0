"""Wiring of the mailchimp service."""

from __future__ import annotations

from m3o.runtime.service import Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.mailchimp.audience import audience_from
from m3o.services.mailchimp.consumers import CustomerSync
from m3o.services.mailchimp.handler import Mailchimp, Membership
from m3o.services.mailchimp.proto.client import SPEC, MailchimpHandler

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    audience = audience_from(deps.config)
    membership = Membership(audience=audience, block_list=deps.config.mailchimp.block_list)
    handler: MailchimpHandler = Mailchimp(membership=membership)
    return ServiceParts(
        handlers=[Handler(SPEC, handler)],
        consumers=[CustomerSync(membership=membership).consumer()],
        on_stop=[audience.close],
    )


definition = ServiceDefinition(name="mailchimp", build=_build, specs=(SPEC,))
