"""The connection's settings: :class:`GraphConfig` and the one parsing path of both hooks.

Pure: the hooks fetch the connection's fields (sync or async) and hand them to
:func:`parse_conn_config`, which validates every extra (UI form ``extra__facebook_graph__<key>``
or plain ``<key>``) and raises :class:`~airflow_fb_async.exceptions.GraphInputError` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.throttle import MAX_THROTTLE_WAIT

if TYPE_CHECKING:
    from collections.abc import Mapping

CONN_TYPE = "facebook_graph"
DEFAULT_CONN_ID = "facebook_graph_default"
DEFAULT_HOST = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"
EXTRA_PREFIX = f"extra__{CONN_TYPE}__"


@dataclass(frozen=True)
class GraphConfig:
    """Everything a hook needs from its Airflow connection, parsed and validated once."""

    conn_id: str
    host: str = DEFAULT_HOST
    api_version: str = DEFAULT_API_VERSION
    token: str = field(default="", repr=False)
    app_secret: str | None = field(default=None, repr=False)
    appsecret_time: bool = False
    timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    throttle_threshold: float = 90.0
    regain_unit_seconds: float = 60.0
    max_throttle_wait: float = MAX_THROTTLE_WAIT
    page_size: int = 500

    @property
    def base_url(self) -> str:
        """``{host}/{api_version}`` (no trailing slash)."""
        return f"{self.host}/{self.api_version}"


def extra_value(extra: Mapping[str, Any], key: str) -> Any:
    """Read an extra in either form: ``extra__facebook_graph__<key>`` (UI form) or ``<key>``.

    The prefixed (UI) form wins when both are set to a non-empty value.
    """
    for name in (EXTRA_PREFIX + key, key):
        value = extra.get(name)
        if value is not None and value != "":
            return value
    return None


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on", "y", "t"}:
        return True
    if text in {"0", "false", "no", "off", "n", "f", ""}:
        return False
    raise GraphInputError(f"connection extra {key!r} must be a boolean, got {value!r}")


def _as_number(key: str, value: Any, kind: type[int] | type[float], minimum: float) -> Any:
    if isinstance(value, bool):
        raise GraphInputError(f"connection extra {key!r} must be a number, got {value!r}")
    try:
        number = float(value)
        result = int(number) if kind is int else number
    except (TypeError, ValueError):
        raise GraphInputError(f"connection extra {key!r} must be a number, got {value!r}") from None
    if kind is int and number != int(number):
        raise GraphInputError(f"connection extra {key!r} must be an integer, got {value!r}")
    if result < minimum:
        raise GraphInputError(f"connection extra {key!r} must be >= {minimum}, got {value!r}")
    return result


def normalize_api_version(value: Any) -> str:
    """``"v25.0"``, ``"25.0"``, ``"v25"`` -> ``"v25.0"`` style; GraphInputError if unparseable."""
    text = str(value).strip().strip("/")
    if not re.fullmatch(r"v?\d+(\.\d+)?", text):
        raise GraphInputError(f"api_version must look like 'v25.0', got {value!r}")
    if not text.startswith("v"):
        text = "v" + text
    if "." not in text:
        text += ".0"
    return text


def normalize_host(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """Base URL from the connection's host (scheme optional), like the HTTP provider does."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_HOST
    if "://" not in host:
        scheme = (schema or "").strip() or "https"
        if scheme not in {"http", "https"}:
            scheme = "https"
        host = f"{scheme}://{host}"
    host = host.rstrip("/")
    if port and not re.search(r":\d+$", urlsplit(host).netloc):
        host = f"{host}:{int(port)}"
    return host


def parse_conn_config(
    conn_id: str,
    *,
    host: str | None,
    password: str | None,
    extra: Mapping[str, Any] | None,
    schema: str | None = None,
    port: int | None = None,
    api_version: str | None = None,
) -> GraphConfig:
    """The one connection parsing path of both hooks (pure: the hooks fetch the fields)."""
    extra = extra or {}

    def num(key: str, default: Any, kind: type[int] | type[float], minimum: float) -> Any:
        value = extra_value(extra, key)
        return default if value is None else _as_number(key, value, kind, minimum)

    version = api_version or extra_value(extra, "api_version") or DEFAULT_API_VERSION
    app_secret = extra_value(extra, "app_secret")
    appsecret_time = extra_value(extra, "appsecret_time")
    return GraphConfig(
        conn_id=conn_id,
        host=normalize_host(host, schema, port),
        api_version=normalize_api_version(version),
        token=(password or "").strip(),
        app_secret=str(app_secret) if app_secret is not None else None,
        appsecret_time=_as_bool("appsecret_time", appsecret_time) if appsecret_time is not None else False,
        timeout=num("timeout", 60.0, float, 0.001),
        max_retries=num("max_retries", 5, int, 0),
        backoff_base=num("backoff_base", 1.0, float, 0.0),
        backoff_max=num("backoff_max", 60.0, float, 0.0),
        throttle_threshold=num("throttle_threshold", 90.0, float, 0.0),
        regain_unit_seconds=num("regain_unit_seconds", 60.0, float, 0.0),
        max_throttle_wait=num("max_throttle_wait", MAX_THROTTLE_WAIT, float, 0.0),
        page_size=num("page_size", 500, int, 1),
    )
