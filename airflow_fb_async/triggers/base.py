"""The skeleton every trigger of this package shares (as Amazon's ``AwsBaseWaiterTrigger``).

A waiter trigger has ids to wait on, a connection, an API version, a poll interval and an absolute
end time; its own arguments come on top (:meth:`GraphWaitTrigger.own_args`). ``serialize()``
derives the class path from the class and returns plain JSON kwargs, so that
``Trigger(**kwargs)`` rebuilds the same trigger. :meth:`GraphWaitTrigger.run` imports the round
loop and the wait's module in a worker thread (a triggerer imports this module on its event loop: it stays light),
logs one start line and fires the one event of :meth:`GraphWaitTrigger.wait`, which waits in the
shared rounds of :func:`~airflow_fb_async.waiting.rounds.wait_rounds` under the subclass's
:meth:`GraphWaitTrigger.rules` (what is read, what a round means).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_fb_async._compat import BaseTrigger, TriggerEvent
from airflow_fb_async.waiting import import_off_loop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_fb_async.waiting.poller import PollKind
    from airflow_fb_async.waiting.rounds import RoundRules

#: The shared round loop, imported with each trigger's wait module in a worker thread.
ROUNDS_MODULE = "airflow_fb_async.waiting.rounds"


class GraphWaitTrigger(BaseTrigger):
    """Waits on Graph objects in the loop's shared poller rounds; fires exactly one event.

    :param graph_conn_id: the Graph connection.
    :param api_version: Graph API version (default: the connection's).
    :param poll_interval: seconds between reads of this trigger's ids at most (shared rounds may read
        them more often, never less: see :mod:`airflow_fb_async.waiting.poller`).
    :param end_time: absolute unix time after which a ``timeout`` event fires; None waits forever.
    """

    #: The module holding the wait's rules: imported in a worker thread when the trigger runs.
    wait_module: ClassVar[str]
    #: What the start line says it waits on ("async request set(s)").
    waits_on: ClassVar[str]

    def __init__(
        self,
        *,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        poll_interval: float = 30.0,
        end_time: float | None = None,
    ) -> None:
        super().__init__()
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version
        self.poll_interval = float(poll_interval)
        if self.poll_interval < 0:
            raise ValueError("poll_interval must be >= 0")
        self.end_time = float(end_time) if end_time is not None else None

    @property
    def ids(self) -> list[str]:
        """The ids waited on."""
        raise NotImplementedError

    def own_args(self) -> dict[str, Any]:
        """The subclass's own serialized arguments (its ids included)."""
        raise NotImplementedError

    def serialize(self) -> tuple[str, dict[str, Any]]:
        common = {
            "graph_conn_id": self.graph_conn_id,
            "api_version": self.api_version,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", {**self.own_args(), **common}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await import_off_loop(ROUNDS_MODULE, self.wait_module)
        self.log.info(
            "Waiting on %d %s (poll every %.1fs%s)",
            len(self.ids),
            self.waits_on,
            self.poll_interval,
            "" if self.end_time is None else f", until unix time {self.end_time:.0f}",
        )
        yield TriggerEvent(await self.wait())

    def rules(self) -> tuple[PollKind, RoundRules]:
        """What the shared poller reads for this trigger and the rules deciding each round (called
        in :meth:`wait`, once the wait's module is loaded)."""
        raise NotImplementedError

    async def wait(self) -> dict[str, Any]:
        """Wait in the shared rounds under :meth:`rules` and return the event payload."""
        from airflow_fb_async.waiting.rounds import wait_rounds  # loaded by run(): lookups

        kind, rules = self.rules()
        return await wait_rounds(
            self.graph_conn_id, self.api_version, kind, self.ids, self.poll_interval, self.end_time, rules
        )
