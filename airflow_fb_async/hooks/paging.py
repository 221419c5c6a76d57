"""Pagination, one step at a time: what both hooks' ``paginate`` run.

::

    walker = start_paging(path, params, page_size, config.page_size)   # limit, split query
    while walker.params is not None:
        items = walker.step(<GET walker.path with walker.params>)     # the hook's sync or async call

The end of an edge is the absence of ``paging.next``; the next page follows
``paging.cursors.after`` (:func:`next_page_params`). :func:`clean_paging` removes the credentials
Graph writes into ``paging.next`` / ``paging.previous`` from every answer the hooks return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_fb_async.exceptions import GraphAPIError, GraphInputError
from airflow_fb_async.hooks.encoding import encode_fields
from airflow_fb_async.hooks.urls import split_path, strip_link_credentials


def page_items(page: Any, where: str) -> list[Any]:
    """The ``data`` list of a paged answer (GraphAPIError if the answer is not a page)."""
    if not isinstance(page, Mapping) or not isinstance(page.get("data", []), list):
        raise GraphAPIError(
            f"expected a paged answer with a 'data' list from {where}, got {type(page).__name__}"
        )
    return list(page.get("data") or [])


def next_page_params(page: Any, params: Mapping[str, str]) -> dict[str, str] | None:
    """Params of the next page, or None at the end.

    The end is the absence of ``paging.next`` (an empty page with ``next`` continues). The next
    page follows ``paging.cursors.after``; the ``next`` URL (which may carry the token) is only
    parsed, credentials dropped, when there is no cursor (offset paging, or an empty page that
    repeats the same request). Params equal to the current ones come back as they are: the caller
    (:class:`PageWalker`) decides whether that is a stall.
    """
    paging = page.get("paging") if isinstance(page, Mapping) else None
    if not isinstance(paging, Mapping) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, Mapping) else None
    nxt: dict[str, str] = dict(params)
    if after:
        nxt.pop("offset", None)
        nxt["after"] = str(after)
    else:
        _, query = split_path(str(paging["next"]))
        nxt.update(query)
    return nxt


class PageWalker:
    """The pagination step shared by both hooks' ``paginate``.

    ``walker.params`` is what to request next (None when done); :meth:`step` takes the page just
    read and returns its items. An empty page that repeats the same request is followed (Graph may
    answer an empty page with a ``next``), at most ``max_stalls`` times in a row; a non-empty page
    that does not advance is an error (it would loop forever, duplicating items).
    """

    def __init__(self, params: Mapping[str, str], where: str, max_stalls: int = 10, path: str = "") -> None:
        self.params: dict[str, str] | None = dict(params)
        self.where = where
        #: The edge being read (without its query): what each page's GET asks for.
        self.path = path
        self.max_stalls = max_stalls
        self.stalls = 0
        self.pages = 0

    def step(self, page: Any) -> list[Any]:
        assert self.params is not None
        items = page_items(page, self.where)
        self.pages += 1
        nxt = next_page_params(page, self.params)
        if nxt is not None and nxt == self.params:
            self.stalls += 1
            if items or self.stalls > self.max_stalls:
                raise GraphAPIError(
                    f"pagination of {self.where} did not advance after page {self.pages} (same cursor again)"
                )
        else:
            self.stalls = 0
        self.params = nxt
        return items


def start_paging(
    path: str, params: Mapping[str, Any] | None, page_size: int | None, default_page_size: int
) -> PageWalker:
    """The walker of a ``paginate(path, params, page_size)`` call: the path without its query, the
    query merged with ``params``, and ``limit`` (``page_size``, else the connection's ``page_size``)."""
    base_path, query = split_path(path)
    query.update(encode_fields(params))
    if page_size is not None:
        if int(page_size) < 1:
            raise GraphInputError(f"page_size must be >= 1, got {page_size!r}")
        query["limit"] = str(int(page_size))
    else:
        query.setdefault("limit", str(default_page_size))
    return PageWalker(query, f"GET /{base_path}", path=base_path)


def clean_paging(body: Any) -> Any:
    """Remove credentials from ``paging.next`` / ``paging.previous`` of an answer, in place.

    Graph puts the token in these links; nothing the hook returns (and callers might log) keeps it.
    The cleaned link still works with :meth:`GraphHook.get` (auth goes in the header).
    """
    paging = body.get("paging") if isinstance(body, dict) else None
    if isinstance(paging, dict):
        for key in ("next", "previous"):
            link = paging.get(key)
            if isinstance(link, str) and link:
                paging[key] = strip_link_credentials(link)
    return body
