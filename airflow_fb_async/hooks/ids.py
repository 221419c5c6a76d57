"""Ids the hooks are given: the one ad account normaliser, and the multi-id helpers.

An ad account id is ``act_<digits>`` or ``<digits>`` (a str or an int); anything else (``act_abc``,
``act_``, ``0``, a bool, None) is a :class:`~airflow_fb_async.exceptions.GraphInputError` naming
the value, raised before any HTTP call. Graph writes the bare digits in ``account_id`` fields and
usage headers, and wants ``act_<digits>`` in paths: :func:`account_digits` and
:func:`normalize_ad_account_id` give either form from one check.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_fb_async.exceptions import GraphInputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

#: Ids per multi-id ``GET /?ids=`` call (Graph's limit).
MULTI_ID_CHUNK = 50
_ACCOUNT_RE = re.compile(r"(?:act_)?([0-9]+)", re.ASCII)


def account_digits(ad_account_id: Any) -> str:
    """``"act_123"``, ``"123"`` or ``123`` -> ``"123"``; GraphInputError (naming the value) otherwise."""
    text = str(ad_account_id).strip() if isinstance(ad_account_id, str | int) else ""
    match = _ACCOUNT_RE.fullmatch(text) if not isinstance(ad_account_id, bool) else None
    if match is None or int(match.group(1)) == 0:
        raise GraphInputError(
            "ad_account_id must be 'act_<digits>' or '<digits>', "
            f"got {type(ad_account_id).__name__}: {ad_account_id!r}"
        )
    return match.group(1)


def normalize_ad_account_id(ad_account_id: Any) -> str:
    """``"act_123"``, ``"123"`` or ``123`` -> ``"act_123"`` (the form Graph's paths take)."""
    return f"act_{account_digits(ad_account_id)}"


def unique_ids(ids: str | Iterable[Any]) -> list[str]:
    """One id or many, as a de-duplicated list of non-empty strings (order kept)."""
    items = [ids] if isinstance(ids, str | int) else list(ids)
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            raise GraphInputError(f"empty object id in {items!r}")
        if text not in out:
            out.append(text)
    return out


def chunks(items: Sequence[str], size: int = MULTI_ID_CHUNK) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size`` (one multi-id call each)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
