from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import requests

from airflow_fb_async.emulator import GraphEmulator
from tests.emu_admin import EmulatorAdmin
from tests.waits import DEADLINE, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_fb_async.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(DEADLINE)  # a safety net against a hang, not a speed requirement
    assert line, f"no first line on stdout after {DEADLINE:g} s; exit code {proc.poll()}"
    assert "http://" in line[0], (line, proc.poll())
    url = "http://" + line[0].split("http://", 1)[1].split()[0]
    return proc, url


def test_emulator_imports_nothing_from_airflow_or_the_provider() -> None:
    """What keeps its start quick (no `import airflow`, ~2 s) and keeps it independent of the hook."""
    probe = (
        "import sys, airflow_fb_async.emulator.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'httpx') "
        "or (m.startswith('airflow_fb_async.') and not m.startswith('airflow_fb_async.emulator'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=DEADLINE,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_cli_prints_url_first_serves_and_exits_zero_on_sigterm() -> None:
    proc, url = _start_cli("--token", "cli-token", "--token", "second-token")
    try:
        assert url.startswith("http://127.0.0.1:")
        for tok in ("cli-token", "second-token"):
            resp = requests.get(f"{url}/v25.0/me", headers={"Authorization": f"OAuth {tok}"}, timeout=5)
            assert resp.status_code == 200
            assert resp.json()["name"] == "Emulator User"
        assert (
            requests.get(f"{url}/v25.0/me", params={"access_token": "emulator-token"}, timeout=5).status_code
            == 400
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_cli_default_token_and_sigint() -> None:
    proc, url = _start_cli()
    try:
        resp = requests.get(f"{url}/me", params={"access_token": "emulator-token"}, timeout=5)
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_cli_state_file_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc, url = _start_cli("--state", str(state))
    try:
        resp = requests.post(
            f"{url}/v25.0/act_5/campaigns",
            timeout=5,
            data={"access_token": "emulator-token", "name": "kept", "objective": "OUTCOME_SALES"},
        )
        camp = resp.json()["id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert json.loads(state.read_text())["objects"][0]["id"] == camp
    proc, url = _start_cli("--state", str(state))
    try:
        resp = requests.get(
            f"{url}/v25.0/{camp}", params={"access_token": "emulator-token", "fields": "name"}, timeout=5
        )
        assert resp.json() == {"id": camp, "name": "kept"}
        new = requests.post(
            f"{url}/v25.0/act_5/campaigns",
            timeout=5,
            data={"access_token": "emulator-token", "name": "n", "objective": "OUTCOME_SALES"},
        )
        assert int(new.json()["id"]) > int(camp)  # the id counter is persisted too
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_context_manager_versioned_and_unversioned_paths_and_quick_stop() -> None:
    with GraphEmulator(port=0, tokens=["t1"]) as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        for prefix in ("/v25.0", "/v19.0", ""):
            resp = requests.post(
                f"{emu.url}{prefix}/act_1/campaigns",
                timeout=5,
                data={"access_token": "t1", "name": "x", "objective": "OUTCOME_SALES"},
            )
            assert resp.status_code == 200, resp.text
        assert emu.counters()["calls_by_kind"]["create"] == 3
        assert len(emu.objects("campaign")) == 3
        host, port = emu.url.removeprefix("http://").split(":")
        idle = socket.create_connection((host, int(port)), timeout=DEADLINE)
        idle.sendall(f"GET /me?access_token=t1 HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")  # now an idle keep-alive connection
        serving = [t for t in emu._threads if t.is_alive()]
        assert len(serving) == 3
    # stop() did not wait for the idle client: it closed the connection, and its threads ended
    assert idle.recv(65536) == b""
    idle.close()
    wait_for(lambda: [t.name for t in serving if t.is_alive()], lambda alive: not alive, "the threads to end")
    try:
        requests.get(f"{emu.url}/me", params={"access_token": "t1"}, timeout=2)
        raise AssertionError("the emulator still answers after stop()")
    except requests.ConnectionError:
        pass


def test_python_admin_methods() -> None:
    with GraphEmulator(port=0, tokens=["t1"], latency=0.0) as emu:
        cfg = emu.configure(max_page_size=7)
        assert cfg["max_page_size"] == 7
        emu.inject_fault("500", count=1)
        resp = requests.get(f"{emu.url}/me", params={"access_token": "t1"}, timeout=5)
        assert resp.status_code == 500
        assert emu.counters()["faults_injected"]["500"] == 1
        assert emu.calls()[-1]["fault"] == "500"
        emu.reset()
        assert emu.counters()["http_calls"] == 0
        assert emu.engine.cfg["max_page_size"] == 500


def test_holds_200_concurrent_connections(emu: EmulatorAdmin, url_token: str) -> None:
    host, port = emu.url.removeprefix("http://").split(":")
    socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(200)]
    try:
        request = (f"GET /v25.0/me?access_token={url_token} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").encode()
        for s in socks:
            s.sendall(request)
        for s in socks:
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
        counters = emu.counters()
        assert counters["max_concurrent_connections"] >= 200
        assert counters["calls_by_kind"]["get_object"] == 200
    finally:
        for s in socks:
            s.close()
