"""Access tokens and ``appsecret_proof``: where a call's token comes from, and whether it is valid."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

from .errors import GraphError, bad_token, missing_token

if TYPE_CHECKING:
    from .core import Call

APPSECRET_MAX_AGE = 300


def token_of(params: dict[str, str], headers: dict[str, str]) -> str | None:
    """``access_token`` from the query or form, else ``Authorization: OAuth|Bearer <t>``."""
    token = params.get("access_token")
    auth = headers.get("authorization", "")
    if not token and auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("oauth", "bearer") and value.strip():
            token = value.strip()
    return token


def _proof_error(detail: str = "") -> GraphError:
    return GraphError(
        f"Invalid appsecret_proof provided in the API argument{detail}", 100, "GraphMethodException"
    )


def check_auth(call: Call, tokens: set[str], secret: str | None) -> None:
    """Raise Graph's error when the token is missing or unknown, or when ``secret`` is set and the
    call's ``appsecret_proof`` (plain, or timed with ``appsecret_time``) does not match."""
    token = call.token
    if not token:
        raise missing_token()
    if token not in tokens:
        raise bad_token()
    if not secret:
        return
    proof = call.params.get("appsecret_proof", "")
    if not proof:
        raise GraphError(
            "API calls from the server require an appsecret_proof argument", 100, "GraphMethodException"
        )
    ts = call.params.get("appsecret_time")
    if ts:
        try:
            age = abs(time.time() - int(ts))
        except ValueError:
            age = APPSECRET_MAX_AGE + 1
        expected = hmac.new(secret.encode(), f"{token}|{ts}".encode(), hashlib.sha256).hexdigest()
        if age > APPSECRET_MAX_AGE:
            raise _proof_error(": appsecret_time is too old")
    else:
        expected = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, proof.lower()):
        raise _proof_error()
