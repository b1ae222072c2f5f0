"""The auth account behind each key, through which the gateway gets tokens for upstreams."""

from __future__ import annotations

from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.v1.records import KeyRow

__all__ = ["APIKEY_ACCOUNT_TYPE", "account_request"]

APIKEY_ACCOUNT_TYPE = "apikey"


def account_request(row: KeyRow) -> auth_pb.GenerateRequest:
    """The account of ``row``'s key: id = the key id, its scopes, metadata ``apikey_owner``
    = the project and ``billing_account``; a random secret nobody knows."""
    return auth_pb.GenerateRequest(
        id=row.id,
        type=APIKEY_ACCOUNT_TYPE,
        scopes=list(row.scopes),
        metadata={"apikey_owner": row.owner, "billing_account": row.billing_account},
    )
