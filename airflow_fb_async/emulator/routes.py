"""The route table: every Graph call the emulator answers, as (method, path pattern) -> handler.

A pattern has zero to two segments. A segment is a literal (``requests``), a set of literals
(``campaigns|adsets``), or a node in braces: ``{node}`` is any node, ``{campaign|adset}`` a node of
one of those types. The node is the path's first segment looked up as an id (``me``, ``act_<digits>``
or a stored object); an unknown id is Graph's "does not exist" error as soon as a route needs it.
``param`` makes a route apply only when that parameter is present.

Order matters where patterns overlap, and the first matching route wins:

- ``GET /`` tries ``ids`` (many nodes) before ``id`` (one node) before the "missing parameter"
  error, as Graph does;
- ``GET /requests?id=<set>`` comes before ``GET /{node}``, so ``requests`` is not looked up as an id;
- for a node, the routes of a type come before the ``{node}`` catch-all that refuses the method
  (``POST`` / ``DELETE`` on a node that does not support it).

A call no route takes is answered by :func:`no_route` the way Graph answers it: an unknown path
(more than two segments), an unsupported method on a node, or a nonexisting edge on its type.
A standard batch (``POST /`` with ``batch``) never reaches the table: the engine runs its entries,
each of which goes through :func:`dispatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from . import async_sets, graph_objects, insights, model
from .errors import param_error, unknown_edge, unknown_object, unknown_path
from .views import resolve

if TYPE_CHECKING:
    from .context import Context
    from .core import Call

#: ``handler(ctx, call, node)``: ``node`` is the node of the path's first segment ({} for ``/``).
Handler = Callable[["Context", "Call", dict[str, Any]], Any]
ADS = "|".join(model.AD_TYPES)


def _missing_id(ctx: Context, call: Call, _root: dict[str, Any]) -> Any:
    raise param_error("Missing parameter: id or ids")


def _nested_batch(ctx: Context, call: Call, _root: dict[str, Any]) -> Any:
    raise param_error("A batch request cannot contain a batch request")


@dataclass(frozen=True)
class Segment:
    """One segment of a pattern: literal names, or a node (of ``types``; any type when empty)."""

    names: frozenset[str] = frozenset()
    node: bool = False
    types: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> Segment:
        if text.startswith("{") and text.endswith("}"):
            inner = text[1:-1]
            return cls(node=True, types=frozenset() if inner == "node" else frozenset(inner.split("|")))
        return cls(names=frozenset(text.split("|")))


@dataclass(frozen=True)
class Route:
    """``method`` + ``pattern`` (see the module docstring) -> ``handler``; with ``param``, only
    when the call has that parameter."""

    method: str
    pattern: str
    handler: Handler
    param: str | None = None

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(Segment.parse(p) for p in self.pattern.split("/") if p)

    def matches(self, call: Call, segs: list[str], node: Callable[[], dict[str, Any]]) -> bool:
        """Whether this route takes ``call`` (looking the node up only when a segment needs it)."""
        if call.method != self.method or len(segs) != len(self.segments):
            return False
        if self.param is not None and self.param not in call.params:
            return False
        for seg, text in zip(self.segments, segs, strict=True):
            if seg.node:
                if seg.types and node().get("_type") not in seg.types:
                    return False
            elif text not in seg.names:
                return False
        return True


ROUTES: tuple[Route, ...] = (
    # ------------------------------------------------ the root: one or many nodes by id
    Route("GET", "/", graph_objects.read_many, param="ids"),
    Route("GET", "/", graph_objects.read_id_param, param="id"),
    Route("GET", "/", _missing_id),
    Route("POST", "/", _nested_batch, param="batch"),  # a batch entry that is itself a batch
    Route("GET", "/requests", async_sets.list_requests_of_id, param="id"),
    # ------------------------------------------------ a node
    Route("GET", "/{node}", graph_objects.read_node),
    Route("POST", "/{async_request_set}", async_sets.update_set),
    Route("POST", "/{account}", graph_objects.update_account),
    Route("POST", f"/{{{ADS}}}", graph_objects.update),
    Route("POST", "/{node}", graph_objects.refuse_update),
    Route("DELETE", "/{async_request_set}", async_sets.cancel_set),
    Route("DELETE", "/{async_request}", async_sets.cancel_request),
    Route("DELETE", f"/{{{ADS}}}", graph_objects.delete),
    Route("DELETE", "/{node}", graph_objects.refuse_delete),
    # ------------------------------------------------ edges of an ad account
    Route("POST", "/{account}/campaigns|adsets|ads|adcreatives", graph_objects.create),
    Route("POST", "/{account}/adimages", graph_objects.upload_images),
    Route("POST", "/{account}/async_batch_requests", async_sets.create_set),
    Route("POST", "/{account}/insights", insights.start_run),
    Route("GET", "/{account}/campaigns|adsets|ads|adcreatives|adimages", graph_objects.list_children),
    Route("GET", "/{account}/insights", insights.sync_report),
    Route("GET", "/{account}/reachestimate", graph_objects.reach_estimate),
    Route("GET", "/{account}/asyncadrequestsets|async_batch_requests", async_sets.list_sets),
    Route("GET", "/{account}/async_requests|asyncadrequests", async_sets.list_account_requests),
    # ------------------------------------------------ edges of the other nodes
    Route("GET", "/{user}/adaccounts", graph_objects.list_ad_accounts),
    Route("POST", "/{campaign|adset|ad}/insights", insights.start_run),
    Route("GET", "/{campaign}/adsets|ads", graph_objects.list_children),
    Route("GET", "/{adset}/ads", graph_objects.list_children),
    Route("GET", "/{adset}/asyncadrequests", async_sets.list_adset_requests),
    Route("GET", "/{campaign|adset|ad}/insights", insights.sync_report),
    Route("GET", "/{report_run}/insights", insights.run_rows),
    Route("GET", "/{async_request_set}/requests", async_sets.list_requests),
    Route("GET", "/{ad}/adcreatives", graph_objects.list_ad_creatives),
)


def dispatch(ctx: Context, call: Call) -> Any:
    """Answer ``call`` with the first route that takes it (the engine holds the store lock)."""
    segs = call.segs
    found: list[dict[str, Any]] = []

    def node() -> dict[str, Any]:
        if not found:
            found.append(resolve(ctx, segs[0]))
        return found[0]

    for route in ROUTES:
        if route.matches(call, segs, node):
            return route.handler(ctx, call, node() if route.segments and route.segments[0].node else {})
    return no_route(call, segs, node)


def no_route(call: Call, segs: list[str], node: Callable[[], dict[str, Any]]) -> Any:
    """Graph's answer to a call no route takes."""
    if len(segs) > 2:
        raise unknown_path(call.path)
    if not segs:
        raise unknown_object("", call.method)
    otype = node().get("_type", "")  # an unknown id is an unknown object, whatever the method
    if len(segs) == 1:
        raise unknown_object(segs[0], call.method)
    raise unknown_edge(segs[1], model.NODE_NAMES.get(otype, "Node"))
