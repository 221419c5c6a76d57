"""Paths, links and the app secret proof: what goes into (and must stay out of) a Graph URL.

Credentials never ride in a URL the hooks build or return: :func:`split_path` drops them from a
caller's path, :func:`strip_link_credentials` from Graph's paging links, and the ETag cache keys
leave them out (:data:`AUTH_FIELDS`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

# Query / form fields that are credentials or derived from them: never in cache keys or logs.
AUTH_FIELDS = frozenset({"access_token", "appsecret_proof", "appsecret_time"})
#: An API version leading a path (``v25.0/``, ``v25``).
VERSION_PREFIX_RE = re.compile(r"^v\d+(\.\d+)?(/|$)")


def split_path(path: str) -> tuple[str, dict[str, str]]:
    """``"act_1/campaigns?fields=id"`` -> ``("act_1/campaigns", {"fields": "id"})``.

    Credentials found in the query (``access_token`` etc.) are dropped. An absolute URL (say a
    ``paging.next``) keeps only its path after the API version.
    """
    path = (path or "").strip()
    query = ""
    if "://" in path:
        parts = urlsplit(path)
        path, query = parts.path, parts.query
        path = VERSION_PREFIX_RE.sub("", path.lstrip("/"))
    elif "?" in path:
        path, query = path.split("?", 1)
    params = {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k not in AUTH_FIELDS}
    return path.strip("/"), params


def appsecret_proof(app_secret: str, token: str, timestamp: int | None = None) -> str:
    """HMAC-SHA256 hex of ``token`` (classic) or ``token|timestamp`` (timed form), keyed by the secret."""
    message = token if timestamp is None else f"{token}|{timestamp}"
    return hmac.new(app_secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def strip_link_credentials(url: str) -> str:
    """A paging link without ``access_token`` / ``appsecret_proof`` / ``appsecret_time``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in AUTH_FIELDS]
    return parts._replace(query=urlencode(query)).geturl()
