"""No stall at start: what a triggerer imports on its event loop for our trigger stays light.

Airflow's triggerer imports a trigger's class on its loop (``import_string``), and whatever the
trigger imports while it runs runs there too unless it is sent to a thread. The first import of
the hook stack (``requests``, ``certifi``, the hook's core) took about 371 ms in a real deployment.
In a fresh interpreter, with an audit hook recording every module import made while an event loop
runs in that thread, a trigger is imported on the loop and run to its event against an emulator:
none of the heavy modules may be among them. Deterministic: it records which imports ran where,
not how long they took (``benchmarks/trigger_loop.py`` measures the lag).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import requests  # the test's own client, loaded before the loop

    import airflow.providers.common.compat.sdk, airflow.triggers.base  # what a running triggerer has loaded (airflow.sdk's names, 2.x homes on 2.11)
    from airflow_fb_async.emulator import GraphEmulator

    on_loop = []

    def audit(event, args):
        if event == "import":
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            on_loop.append(args[0])

    with GraphEmulator(port=0, tokens=["TOKEN-0123456789abcdef-no-stall"]) as emu:
        resp = requests.post(
            f"{emu.url}/v25.0/act_1/async_batch_requests",
            data={"name": "s", "adbatch": json.dumps(
                [{"name": "c", "relative_url": "act_1/campaigns", "body": "name=c&objective=OUTCOME_TRAFFIC"}]
            )},
            headers={"Authorization": "OAuth TOKEN-0123456789abcdef-no-stall"},
            timeout=30,
        )
        set_id = resp.json()["id"]
        import os
        os.environ["AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT"] = json.dumps({
            "conn_type": "facebook_graph", "host": emu.url,
            "password": "TOKEN-0123456789abcdef-no-stall", "extra": {"api_version": "v25.0"},
        })
        sys.addaudithook(audit)

        async def main():
            # On the loop, as the triggerer's import_string (an import statement: importlib's own
            # path raises no audit event for the top module).
            from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
            trigger = AsyncRequestSetTrigger([set_id], poll_interval=0.05, end_time=time.time() + 60)
            gen = trigger.run()
            event = await gen.__anext__()
            await gen.aclose()
            return event.payload

        payload = asyncio.run(main())
    print(json.dumps({"status": payload["status"], "on_loop": on_loop}))
    """
)

HEAVY = (
    "airflow_fb_async.hooks.graph",
    "airflow_fb_async.hooks.graph_async",
    "airflow_fb_async.hooks.call",
    "requests",
    "urllib3",
    "certifi",
)


def test_no_heavy_import_on_the_loop(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT", None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "success", result
    on_loop = result["on_loop"]
    # The audit hook was live: the trigger's own module was imported on the loop, as in a triggerer.
    assert "airflow_fb_async.triggers.async_request_set" in on_loop
    heavy = [name for name in on_loop if name.startswith(HEAVY)]
    assert heavy == [], heavy
    # The waiting machinery and the hook came from a worker thread.
    assert not [
        name
        for name in on_loop
        if name.startswith(("airflow_fb_async.waiting.", "airflow_fb_async.hooks."))
        and name != "airflow_fb_async.waiting.ids"
    ], on_loop
