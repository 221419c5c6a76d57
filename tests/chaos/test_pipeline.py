"""Chaos campaign (issue 9): the full pipeline and a large standard batch under every fault at once.

Faults, together: ~10 % HTTP 500 and drops after commit on random calls, 10 % null batch entries,
throttling bursts announcing ``estimated_time_to_regain_access``, drops and errors after commit on
request set creates, latency jitter; errors after commit (issue 12) on 10 % of POST calls and 10 % of
standard-batch creates and updates; and a trigger cancelled mid-wait and rebuilt from
``serialize()`` (a triggerer restart). Everything is then checked against the emulator's own
records: objects created vs. intended, duplicates, and every create reported ambiguous listed with
the object the emulator holds for it.

Profile: ``quick`` by default (``make test``), ``CHAOS_PROFILE=long`` for ``make chaos``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.operators.batch import GraphBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
from tests.chaos._support import (
    PROFILE,
    Monkey,
    by_name,
    calm,
    chaos_config,
    ctx,
    fault_table,
    listing,
    multi_reads,
    rebuild_trigger,
    report,
    until_polled,
)
from tests.emu_admin import EmulatorAdmin

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

CAMPAIGN = {"objective": "OUTCOME_TRAFFIC", "status": "PAUSED", "special_ad_categories": []}


def campaign_requests(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"name": f"r{k}", "relative_url": "{acct}/campaigns", "body": {"name": f"{prefix}{k}", **CAMPAIGN}}
        for k in range(n)
    ]


# --------------------------------------------------------------------------------------------------
# submit -> wait (trigger, restarted mid-wait) -> results
# --------------------------------------------------------------------------------------------------


async def _wait_with_restart(ids: list[str], emu: EmulatorAdmin, pace: float) -> dict[str, Any]:
    """Run the trigger while the emulator does not process, cancel it (triggerer going down),
    resume processing, rebuild the trigger from serialize() and run it to its event."""
    trigger = AsyncRequestSetTrigger(request_set_ids=ids, poll_interval=0.2)
    polls = multi_reads(emu)
    first = trigger.run()
    task = asyncio.ensure_future(first.__anext__())
    await until_polled(emu, polls, 3)  # it has looked at the paused sets, whatever the machine's load
    assert not task.done(), "the trigger fired although processing was paused"
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, StopAsyncIteration):
        pass
    await first.aclose()
    emu.config(async_pace=pace)  # processing goes on while "the triggerer restarts"
    await asyncio.sleep(0.3)
    rebuilt = rebuild_trigger(trigger)
    assert rebuilt.serialize() == trigger.serialize()
    events = [e async for e in rebuilt.run()]
    assert len(events) == 1, events
    return events[0].payload


async def test_async_pipeline_under_chaos(
    chaos_conn: EmulatorAdmin, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    emu = chaos_conn
    before = emu.counters()
    total_lost = total_dup = 0
    extra: Counter[str] = Counter()
    recon: Counter[str] = Counter()  # insertion order is the table's order
    for rnd in range(PROFILE.rounds):
        acct = f"act_{7100 + rnd}"
        prefix = f"chaos-pipe-r{rnd}-"
        expected = {f"{prefix}s{s}-{k}" for s in range(PROFILE.submits) for k in range(PROFILE.per_submit)}
        chaos_config(emu, seed=1000 + rnd, async_pace=0)  # sets wait until the "restart"
        emu.fault("drop_after_commit", count=2, method="POST", path_regex="async_batch_requests")
        emu.fault("error_after_commit", count=2, method="POST", path_regex="async_batch_requests")
        sets_before = emu.counters()["request_sets_created"]
        with Monkey(emu, seed=rnd, create_regex="async_batch_requests") as monkey:
            all_ids: list[str] = []
            for s in range(PROFILE.submits):
                reqs = campaign_requests(f"{prefix}s{s}-", PROFILE.per_submit)
                for r in reqs:
                    r["relative_url"] = f"{acct}/campaigns"
                op = SubmitAsyncBatchOperator(
                    task_id=f"submit{s}",
                    ad_account_id=acct,
                    requests=reqs,
                    name=f"chaos r{rnd} s{s}",
                    max_set_size=PROFILE.max_set_size,
                )
                ids = op.execute(ctx(task_id=f"submit{s}"))
                # An Airflow retry of the same task instance finds its sets: nothing created twice.
                again = SubmitAsyncBatchOperator(
                    task_id=f"submit{s}",
                    ad_account_id=acct,
                    requests=reqs,
                    name=f"chaos r{rnd} s{s}",
                    max_set_size=PROFILE.max_set_size,
                ).execute(ctx(task_id=f"submit{s}"))
                assert again == ids
                all_ids += ids
            payload = await _wait_with_restart(all_ids, emu, PROFILE.async_pace)
            assert payload["status"] == "success", payload
            assert sorted(payload["request_sets"]) == sorted(all_ids)
            assert sum(c["total_count"] for c in payload["request_sets"].values()) == len(expected)
            assert sum(c["success_count"] for c in payload["request_sets"].values()) == len(expected)

            items = AsyncRequestResultsOperator(
                task_id="results", request_set_ids=all_ids, max_xcom_items=len(expected) + 10
            ).execute({})
            out = tmp_path / f"ids-{rnd}.jsonl"
            written = AsyncRequestResultsOperator(
                task_id="results_file", request_set_ids=all_ids, ids_only=True, output_path=str(out)
            ).execute({})
            extra.update(monkey.queued)
        calm(emu)
        file_ids = [json.loads(line) for line in out.read_text().splitlines()]
        request_ids = [i["id"] for i in items]
        created_ids = [i["result"]["id"] for i in items if i["status"] == "SUCCESS"]
        objects = [o for o in emu.objects("campaign") if str(o.get("name", "")).startswith(prefix)]
        names = by_name(objects, prefix)
        sets = [o for o in emu.objects("async_request_set") if o.get("id") in set(all_ids)]

        lost = len(expected - set(names)) + len(set(o["id"] for o in objects) - set(created_ids))
        dup = (
            sum(c - 1 for c in names.values() if c > 1)
            + len(request_ids)
            - len(set(request_ids))
            + len(created_ids)
            - len(set(created_ids))
            + len(all_ids)
            - len(set(all_ids))
        )
        total_lost += lost
        total_dup += dup
        extra["request sets"] += len(all_ids)
        extra["requests"] += len(expected)
        recon["campaigns intended"] += len(expected)
        recon["campaigns created (exist once)"] += sum(1 for n in expected if names[n] == 1)
        # Set creates whose work was done but whose answer was an error or nothing: the submit found
        # those sets again by their marker (none created twice, none reported ambiguous).
        recon["set creates uncertain, found again"] += sum(
            1
            for c in emu.calls()
            if c["method"] == "POST"
            and c["path"].endswith(f"{acct}/async_batch_requests")
            and c["fault"] in ("error_after_commit", "drop_after_commit")
        )
        # Every requested object exists exactly once; every result reported exactly once; nothing
        # reported that did not happen.
        assert set(names) == expected, sorted(expected - set(names))[:5]
        assert all(c == 1 for c in names.values()), names.most_common(3)
        assert len(request_ids) == len(set(request_ids)) == len(expected)
        assert all(i["status"] == "SUCCESS" for i in items)
        assert sorted(created_ids) == sorted(o["id"] for o in objects)
        assert sorted(file_ids) == sorted(created_ids)
        assert written["count"] == len(expected)
        assert len(set(all_ids)) == len(all_ids) == len(sets)
        assert emu.counters()["request_sets_created"] - sets_before == len(all_ids), "a set was created twice"
    after = emu.counters()
    report(
        request,
        fault_table(
            "async pipeline: submit -> trigger (restarted) -> results",
            before,
            after,
            [*recon.items(), *sorted(extra.items())],
            total_lost,
            total_dup,
        ),
    )
    assert total_lost == 0
    assert total_dup == 0


# --------------------------------------------------------------------------------------------------
# A large standard batch
# --------------------------------------------------------------------------------------------------


def _error_type(entry: dict[str, Any]) -> str | None:
    body = entry.get("body")
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("type") if isinstance(err, dict) else None


def _interleave(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One of each group in turn (creates, updates and reads share every call)."""
    out: list[dict[str, Any]] = []
    for k in range(max(len(g) for g in groups)):
        out += [g[k] for g in groups if k < len(g)]
    return out


#: Rows of the standard batch table, in this order: (counter key, label). Counts sum over the rounds.
BATCH_ROWS = (
    ("entries", "batch entries"),
    ("creates", "creates intended"),
    ("creates 200", "  reported done (200)"),
    ("creates 504", "  reported ambiguous (504)"),
    ("creates 504 held", "    committed: exist once"),
    ("creates 504 none", "    not done: resent after a check"),
    ("creates failed", "  reported failed (not done)"),
    ("created by run", "  created by the run"),
    ("lost by run", "  lost by the run"),
    ("created in the end", "  created in the end"),
    ("updates", "updates intended"),
    ("updates 200", "  reported done (200)"),
    ("updates failed", "  reported failed (resent)"),
    ("applied in the end", "  applied in the end"),
    ("reads 200", "reads ok"),
    ("reads failed", "reads failed"),
)


def test_standard_batch_under_chaos(chaos_conn: EmulatorAdmin, request: pytest.FixtureRequest) -> None:
    """Creates, updates and reads in one large batch under the whole fault mix, errors after commit
    included; then reconciled against the emulator's objects. Every create the run reports done
    exists once; every create reported ambiguous (504) is listed with the object the emulator holds
    for it (committed before the error) or none (the call was refused before any work); every create
    reported failed does not exist. Resending what certainly did not happen, after a check by name for
    the ambiguous ones, then leaves every intended object exactly once and every update applied."""
    emu = chaos_conn
    hook = GraphHook()
    before = emu.counters()
    stats: Counter[str] = Counter()
    monkey_stats: Counter[str] = Counter()
    ambiguous_listed: list[str] = []
    total_lost = total_dup = 0
    for rnd in range(PROFILE.rounds):
        acct = f"act_{7200 + rnd}"
        prefix = f"chaos-batch-r{rnd}-"
        names = [f"{prefix}{k}" for k in range(PROFILE.batch_writes)]
        writes = [
            {
                "method": "POST",
                "relative_url": f"{acct}/campaigns",
                "name": f"w{k}",
                "body": {"name": n, **CAMPAIGN},
            }
            for k, n in enumerate(names)
        ]
        # The campaigns the updates change, made before the faults start.
        made = hook.batch(
            [
                {"method": "POST", "relative_url": f"{acct}/campaigns", "body": {"name": f"t{k}", **CAMPAIGN}}
                for k in range(PROFILE.batch_updates)
            ]
        )
        assert [r["code"] for r in made] == [200] * PROFILE.batch_updates
        targets = [r["body"]["id"] for r in made]
        wanted = {t: 10_000 + k for k, t in enumerate(targets)}
        updates = [{"method": "POST", "relative_url": t, "body": {"spend_cap": v}} for t, v in wanted.items()]
        reads = [
            {"method": "GET", "relative_url": f"{acct}?fields=id,name"} for _ in range(PROFILE.batch_reads)
        ]
        requests_ = _interleave(writes, updates, reads)
        index = {id(r): i for i, r in enumerate(requests_)}
        chaos_config(emu, seed=2000 + rnd)
        with Monkey(emu, seed=100 + rnd) as monkey:
            results = GraphBatchOperator(
                task_id="batch",
                requests=requests_,
                fail_on_error=False,
                max_concurrency=4,
                batch_options={"round_backoff": 0.01, "round_backoff_max": 0.2, "chunk_size": 10},
            ).execute({})
            monkey_stats.update(monkey.queued)
        calm(emu)
        assert len(results) == len(requests_)
        by_req = dict(zip((id(r) for r in requests_), results, strict=True))
        campaigns = emu.objects("campaign")
        counts = by_name(campaigns, prefix)
        ids_by_name = {o.get("name"): o.get("id") for o in campaigns}
        stats["entries"] += len(requests_)
        stats["creates"] += len(writes)
        resend: list[tuple[dict[str, Any], str]] = []
        for req, name in zip(writes, names, strict=True):
            res = by_req[id(req)]
            if res["code"] == 200:
                stats["creates 200"] += 1
                # Reported done: it happened, exactly once, with that id.
                assert counts[name] == 1, (name, counts[name])
                assert ids_by_name[name] == res["body"]["id"]
            elif _error_type(res) == "BatchEntryAmbiguous":
                stats["creates 504"] += 1
                assert "may or may not have taken effect" in res["body"]["error"]["message"]
                assert counts[name] <= 1, (name, counts[name])  # never resent
                held = ids_by_name[name] if counts[name] else None
                stats["creates 504 held" if held else "creates 504 none"] += 1
                ambiguous_listed.append(f"r{rnd} #{index[id(req)]} {req['name']} -> {held or 'none'}")
                if held is None:
                    resend.append((req, name))
            else:
                stats["creates failed"] += 1
                # Reported failed (a Graph error answer, null, throttling): it did not happen.
                assert counts[name] == 0, (name, res)
                resend.append((req, name))
        created = sum(1 for n in names if counts[n])
        stats["created by run"] += created
        # Lost by the run: not there, yet reported done (a failed or 504 answer says so itself).
        stats["lost by run"] += sum(
            1
            for req, n in zip(writes, names, strict=True)
            if counts[n] == 0 and by_req[id(req)]["code"] == 200
        )
        spend = {o["id"]: o.get("spend_cap") for o in campaigns}
        stats["updates"] += len(updates)
        updates_again = []
        for req in updates:
            res = by_req[id(req)]
            # Updates are repeatable: never reported ambiguous, sent again until they are settled.
            assert res["code"] != 504, res
            if res["code"] == 200:
                stats["updates 200"] += 1
                assert spend[req["relative_url"]] == wanted[req["relative_url"]]
            else:
                stats["updates failed"] += 1
                updates_again.append(req)
        for req in reads:
            stats["reads 200" if by_req[id(req)]["code"] == 200 else "reads failed"] += 1

        # What a careful user does next: resend what certainly did not happen (and the ambiguous
        # creates a check by name did not find), and the failed updates. The end state must then
        # hold every object exactly once and every update applied.
        pending = [r for r, _ in resend] + updates_again
        for _ in range(3):
            if not pending:
                break
            again = hook.batch(pending)
            counts = by_name(emu.objects("campaign"), prefix)
            # An update (no name in its body) is pending until it succeeds; a create until its
            # object exists.
            pending = [
                r
                for r, res in zip(pending, again, strict=True)
                if res["code"] != 200 and not counts[r["body"].get("name", "")]
            ]
        final = emu.objects("campaign")
        counts = by_name(final, prefix)
        lost = sum(1 for n in names if counts[n] == 0)
        dup = sum(c - 1 for c in counts.values() if c > 1)
        stats["created in the end"] += sum(1 for n in names if counts[n])
        applied = {o["id"]: o.get("spend_cap") for o in final if o["id"] in wanted}
        stats["applied in the end"] += sum(1 for t, v in wanted.items() if applied.get(t) == v)
        total_lost += lost
        total_dup += dup
        assert lost == 0, lost
        assert dup == 0, dup
        assert applied == wanted
    after = emu.counters()
    lines = fault_table(
        "standard batch (GraphBatchOperator): creates, updates, reads",
        before,
        after,
        [(label, stats[key]) for key, label in BATCH_ROWS] + sorted(monkey_stats.items()),
        total_lost,
        total_dup,
    )
    lines += listing("ambiguous creates reported (round #index name -> object held)", ambiguous_listed)
    report(request, lines)
    assert stats["created in the end"] == stats["creates"]
    assert stats["lost by run"] == 0


# --------------------------------------------------------------------------------------------------
# The same pipeline as a DAG, through dag.test(): the sensor defers and its trigger runs inline
# --------------------------------------------------------------------------------------------------


def test_dag_pipeline_under_chaos(
    chaos_conn: EmulatorAdmin, airflow_db: None, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from airflow.utils.state import DagRunState

    from tests.conftest import run_dag

    emu = chaos_conn
    n = PROFILE.per_submit
    prefix = "chaos-dag-"
    out = tmp_path / "dag-ids.jsonl"
    before = emu.counters()
    chaos_config(emu, seed=3000)
    emu.fault("drop_after_commit", count=1, method="POST", path_regex="async_batch_requests")
    emu.fault("error_after_commit", count=1, method="POST", path_regex="async_batch_requests")
    with Monkey(emu, seed=3, create_regex="async_batch_requests") as monkey:
        dagrun = run_dag("chaos_pipeline", account="act_7500", prefix=prefix, n=n, out=str(out))
    calm(emu)
    # Set creates are keyed by task instance: an uncertain one is found again by its marker, never
    # left ambiguous, so this pipeline (unlike a batch of plain creates) ends in success.
    assert dagrun.state == DagRunState.SUCCESS, dagrun.state
    ids = [json.loads(line) for line in out.read_text().splitlines()]
    objects = [o for o in emu.objects("campaign") if str(o.get("name", "")).startswith(prefix)]
    names = by_name(objects, prefix)
    expected = {f"{prefix}{k}" for k in range(n)}
    lost = len(expected - set(names))
    dup = sum(c - 1 for c in names.values() if c > 1) + len(ids) - len(set(ids))
    report(
        request,
        fault_table(
            "DAG (dag.test): submit -> deferrable sensor -> results",
            before,
            emu.counters(),
            [
                *sorted(monkey.queued.items()),
                ("campaigns intended", n),
                ("campaigns created (exist once)", sum(1 for k in expected if names[k] == 1)),
            ],
            lost,
            dup,
        ),
    )
    assert set(names) == expected
    assert all(c == 1 for c in names.values())
    assert sorted(ids) == sorted(o["id"] for o in objects)
