"""Keeping secrets out of text: :class:`Scrubber` (the one scrubber of the package) and the log filter
for the HTTP libraries, which log request URLs themselves.

Every exception message and log line of the hooks passes through the connection's scrubber;
waiters (``waiting/``) take its ``scrub`` callable.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from collections.abc import Iterable

_SECRET_QUERY_RE = re.compile(
    r"((?:access_token|appsecret_proof)(?:=|%3D|\"\s*:\s*\"))[^&\s\"'#<>,;)]+", re.I
)
_AUTH_HEADER_RE = re.compile(r"\b(OAuth|Bearer)\s+[A-Za-z0-9._~+/=|-]{8,}")
REDACTED = "***"


class Scrubber:
    """Removes secrets from text: the token (raw, URL-encoded, form-encoded), the app secret, and
    every ``access_token=`` / ``appsecret_proof=`` value whatever it is."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.update({secret, quote(secret, safe=""), quote_plus(secret), quote(secret)})
        # Longest first so a variant containing another one is removed whole.
        self._variants = sorted((v for v in variants if v), key=len, reverse=True)

    def __call__(self, text: Any) -> str:
        out = self.secrets_only(text)
        out = _SECRET_QUERY_RE.sub(lambda m: m.group(1) + REDACTED, out)
        return _AUTH_HEADER_RE.sub(lambda m: m.group(1) + " " + REDACTED, out)

    def secrets_only(self, text: Any) -> str:
        """``text`` without the connection's own secrets (token, app secret) and nothing else.

        For data Graph returns (batch entry bodies): a page token asked for with
        ``fields=access_token`` is data, not this connection's credential, and is kept.
        """
        out = text if isinstance(text, str) else str(text)
        for variant in self._variants:
            if variant in out:
                out = out.replace(variant, REDACTED)
        return out


class QueryCredentialsLogFilter(logging.Filter):
    """Redacts ``access_token=`` / ``appsecret_proof=`` values from records of HTTP libraries.

    urllib3 (DEBUG) and httpx (INFO) log request URLs themselves; Graph only takes
    ``appsecret_proof`` as a parameter, so on GET/DELETE it is in the query they log.
    """

    _scrub = Scrubber()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


HTTP_LIBRARY_LOGGERS = ("urllib3.connectionpool", "httpx")


def install_library_log_filter() -> None:
    """Attach :class:`QueryCredentialsLogFilter` once to the loggers of the HTTP libraries we use."""
    for name in HTTP_LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryCredentialsLogFilter) for f in logger.filters):
            logger.addFilter(QueryCredentialsLogFilter())
