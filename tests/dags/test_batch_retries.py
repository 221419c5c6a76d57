"""DAGs for tests/operators/test_batch_retries.py (and the file-fed one for
tests/operators/test_file_fed.py): GraphBatchOperator across task retries (dag.test()).

Each DAG has one task, ``batch``, with ``retry_delay=0`` so the retries run at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_fb_async.operators.batch import GraphBatchOperator

OPTS: dict[str, Any] = {"round_backoff": 0.01}
START = pendulum.datetime(2025, 1, 1, tz="UTC")


def campaign(account: str, name: str, **fields: Any) -> dict[str, Any]:
    """A campaign create (without ``objective`` when ``fields`` says so, which Graph rejects)."""
    body = {"name": name, "objective": "OUTCOME_TRAFFIC", **fields}
    return {
        "method": "POST",
        "relative_url": f"{account}/campaigns",
        "body": {k: v for k, v in body.items() if v is not None},
    }


# 150 creates in three calls of 50, one call at a time; the tests reject the token on the 3rd call.
for dag_id, retries in (("test_batch_retry_token", 1), ("test_batch_stop_token", 0)):
    with DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, tags=["test"]):
        GraphBatchOperator(
            task_id="batch",
            requests=[campaign("act_190190", f"c{i:03d}") for i in range(150)],
            max_concurrency=1,
            batch_options=OPTS,
            retries=retries,
            retry_delay=timedelta(0),
        )

# One good create and one Graph rejects (no objective): every try fails on the bad one.
with DAG(dag_id="test_batch_retry_invalid", schedule=None, start_date=START, catchup=False, tags=["test"]):
    GraphBatchOperator(
        task_id="batch",
        requests=[campaign("act_424242", "good"), campaign("act_424242", "bad", objective=None)],
        batch_options=OPTS,
        retries=2,
        retry_delay=timedelta(0),
    )


class _DyingJournal:
    """A journal whose try dies at its ``die_at``-th save, and stays dead (records nothing more).

    The engine saves before each call goes out and after its outcome: dying at the 2nd save is a
    worker killed after Graph did the first call's work but before the try recorded what came back.
    """

    def __init__(self, journal: Any, die_at: int) -> None:
        self.journal = journal
        self.die_at = die_at
        self.saves = 0

    def load(self) -> dict[str, Any] | None:
        return self.journal.load()  # type: ignore[no-any-return]

    def save(self, state: dict[str, Any]) -> None:
        self.saves += 1
        if self.saves >= self.die_at:
            raise RuntimeError("worker killed (simulated)")
        self.journal.save(state)


class DiesAfterFirstCall(GraphBatchOperator):
    """Try 1 dies right after its first Graph call went through; later tries run normally."""

    def journal(self, context: Any, requests: Any) -> Any:
        journal = super().journal(context, requests)
        if journal is None or context["ti"].try_number > 1:
            return journal
        return _DyingJournal(journal, die_at=2)


CAMPAIGN = "{{ dag_run.conf['campaign_id'] }}"
# Two creates, an update and a read of an existing campaign (its id in dag_run.conf), in one call.
MIXED = [
    campaign("act_504504", "new1"),
    campaign("act_504504", "new2"),
    {"method": "POST", "relative_url": CAMPAIGN, "body": {"name": "renamed"}},
    {"method": "GET", "relative_url": f"{CAMPAIGN}?fields=name"},
]

with DAG(dag_id="test_batch_retry_in_flight", schedule=None, start_date=START, catchup=False, tags=["test"]):
    DiesAfterFirstCall(
        task_id="batch",
        requests=MIXED,
        fail_on_error=False,
        batch_options=OPTS,
        retries=1,
        retry_delay=timedelta(0),
    )

# The same mixed call, answered 500 after Graph did the work (the tests queue the fault): the
# creates end 504, so every try fails; a retry sends nothing (504 and settled entries stay).
with DAG(dag_id="test_batch_retry_ambiguous", schedule=None, start_date=START, catchup=False, tags=["test"]):
    GraphBatchOperator(
        task_id="batch", requests=MIXED, batch_options=OPTS, retries=1, retry_delay=timedelta(0)
    )

# Requests that render differently on each try: the retry starts afresh (and logs so).
with DAG(dag_id="test_batch_retry_changed", schedule=None, start_date=START, catchup=False, tags=["test"]):
    GraphBatchOperator(
        task_id="batch",
        requests=[
            campaign("act_777001", "try{{ ti.try_number }}"),
            campaign("act_777001", "bad", objective=None),
        ],
        batch_options=OPTS,
        retries=1,
        retry_delay=timedelta(0),
    )

# File-fed: the requests and output paths come from the run's conf. Windows of 60 requests, calls of
# 30, one call at a time.
with DAG(dag_id="test_file_batch_retry_token", schedule=None, start_date=START, catchup=False, tags=["test"]):
    GraphBatchOperator(
        task_id="batch",
        requests_path="{{ dag_run.conf['requests_path'] }}",
        output_path="{{ dag_run.conf['output_path'] }}",
        window_size=60,
        max_concurrency=1,
        batch_options={**OPTS, "chunk_size": 30},
        retries=1,
        retry_delay=timedelta(0),
    )
