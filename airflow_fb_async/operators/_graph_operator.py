"""The base of the operators that talk to Graph: one connection, one hook."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import BaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_fb_async.hooks.graph import GraphHook


class GraphOperator(BaseOperator):
    """An operator that talks to Graph through one connection: it keeps ``graph_conn_id`` and
    ``api_version`` (both templated in the subclasses) and builds the sync hook once, on first use.

    :param graph_conn_id: Graph connection id. (templated)
    :param api_version: Graph API version, default the connection's. (templated)
    """

    #: The connection's templated fields; subclasses append them to their own.
    template_fields: Sequence[str] = ("graph_conn_id", "api_version")

    def __init__(
        self, *, graph_conn_id: str = "facebook_graph_default", api_version: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version

    @cached_property
    def hook(self) -> GraphHook:
        """The sync Graph hook for this operator's connection."""
        from airflow_fb_async.hooks.graph import GraphHook

        return GraphHook(graph_conn_id=self.graph_conn_id, api_version=self.api_version)
