"""What a handler may use of the engine: the :class:`Context` protocol.

Handlers (``graph_objects``, ``async_sets``, ``insights``, ``batch``...) are typed against this
protocol, not against ``Engine``, so no handler module imports the engine (not even for typing) and
the engine imports the handlers through the route table: one direction only. State lives in
``store`` and is changed through its methods; the rest is read-only settings and the engine's own
pipeline entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .core import Call, Resp
    from .errors import GraphError
    from .faults import FaultQueue
    from .store import Store
    from .throttle import UsageTracker


class Context(Protocol):
    """The engine as handlers see it."""

    store: Store
    cfg: dict[str, Any]  # the settings (``/__admin/config``); read, never written, by handlers
    faults: FaultQueue
    usage: UsageTracker
    tokens: set[str]
    base_url: str

    def execute(self, call: Call) -> Resp:
        """Run one Graph call through throttling and the route table (batch entries, async requests)."""
        ...

    def error_resp(self, call: Call, err: GraphError) -> Resp:
        """``err`` as a response with the usage headers of ``call``'s accounts."""
        ...

    def accounts_of(self, call: Call) -> list[str | None]:
        """The ad accounts a call counts against (``None`` when it names none)."""
        ...
