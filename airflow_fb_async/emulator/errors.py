"""Graph error envelopes."""

from __future__ import annotations

import secrets
from typing import Any


def fbtrace_id() -> str:
    return "E" + secrets.token_urlsafe(8).replace("-", "A").replace("_", "B")


class GraphError(Exception):
    def __init__(
        self,
        message: str,
        code: int = 100,
        type: str = "OAuthException",
        subcode: int | None = None,
        status: int = 400,
        is_transient: bool = False,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.type = type
        self.subcode = subcode
        self.status = status
        self.is_transient = is_transient
        self.user_title = user_title
        self.user_msg = user_msg

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        err["is_transient"] = self.is_transient
        if self.user_title is not None:
            err["error_user_title"] = self.user_title
        if self.user_msg is not None:
            err["error_user_msg"] = self.user_msg
        err["fbtrace_id"] = fbtrace_id()
        return {"error": err}


def param_error(message: str, user_title: str | None = None, user_msg: str | None = None) -> GraphError:
    return GraphError(f"(#100) {message}", 100, "OAuthException", user_title=user_title, user_msg=user_msg)


def missing_field(field: str, what: str) -> GraphError:
    return GraphError(
        f"(#100) The parameter {field} is required",
        100,
        "OAuthException",
        subcode=1487534,
        user_title=f"Missing field: {field}",
        user_msg=f"The field '{field}' is required to create a {what}.",
    )


def bad_json(field: str, detail: str = "") -> GraphError:
    return GraphError(
        f"(#100) Param {field} must be a valid JSON value" + (f": {detail}" if detail else ""),
        100,
        "OAuthException",
        user_title="Invalid JSON",
        user_msg=f"The value of '{field}' is not valid JSON.",
    )


def unknown_object(obj_id: str, method: str = "get") -> GraphError:
    return GraphError(
        f"Unsupported {method.lower()} request. Object with ID '{obj_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        100,
        "GraphMethodException",
        subcode=33,
    )


def unknown_edge(edge: str, node_type: str) -> GraphError:
    return GraphError(f"(#100) Tried accessing nonexisting field ({edge}) on node type ({node_type})", 100)


def unknown_path(path: str) -> GraphError:
    return GraphError(f"Unknown path components: /{path}", 2500, "OAuthException")


def bad_token() -> GraphError:
    return GraphError("Invalid OAuth access token - Cannot parse access token", 190, "OAuthException")


def token_rejected(subcode: int | None) -> GraphError:
    """A token Graph no longer accepts (subcode 463: the session expired), as an injected fault."""
    if subcode == 463:
        message = "Error validating access token: Session has expired."
    else:
        message = "Error validating access token: The session is invalid."
    return GraphError(message, 190, "OAuthException", subcode=subcode)


def missing_token() -> GraphError:
    return GraphError(
        "An active access token must be used to query information about the current user.",
        190,
        "OAuthException",
    )


def internal_error() -> GraphError:
    return GraphError("An unknown error occurred", 1, "OAuthException", status=500, is_transient=True)


def server_error() -> GraphError:
    return GraphError(
        "An unexpected error has occurred. Please retry your request later.",
        2,
        "OAuthException",
        status=500,
        is_transient=True,
    )


def code1_error() -> GraphError:
    return GraphError(
        "Please reduce the amount of data you're asking for, then retry your request",
        1,
        "OAuthException",
        is_transient=True,
    )


THROTTLE_MESSAGES = {
    4: ("Application request limit reached", None),
    17: ("User request limit reached", 2446079),
    32: ("Page request limit reached", None),
    613: ("Calls to this api have exceeded the rate limit.", 1487742),
}


def throttle_error(code: int) -> GraphError:
    message, subcode = THROTTLE_MESSAGES.get(
        code,
        (
            "There have been too many calls to this ad-account. Wait a bit and try again. For more info, "
            "please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting#ads-management.",
            2446079,
        ),
    )
    return GraphError(
        f"(#{code}) {message}",
        code,
        "OAuthException",
        subcode=subcode,
        is_transient=False,
        user_title="Too many calls",
        user_msg="There have been too many calls to this ad account. Wait a bit and try again.",
    )
