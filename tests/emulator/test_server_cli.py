from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from airflow_fb_async.emulator import GraphEmulator
from tests.emu_admin import EmulatorAdmin

ROOT = Path(__file__).resolve().parents[2]


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str, float]:
    started = time.monotonic()
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
    reader.join(10)
    elapsed = time.monotonic() - started
    assert line, proc.poll()
    assert "http://" in line[0], (line, proc.poll())
    url = "http://" + line[0].split("http://", 1)[1].split()[0]
    return proc, url, elapsed


def test_cli_prints_url_first_serves_and_exits_zero_on_sigterm() -> None:
    proc, url, elapsed = _start_cli("--token", "cli-token", "--token", "second-token")
    try:
        assert url.startswith("http://127.0.0.1:")
        assert elapsed < 5, elapsed  # typically ~0.1 s: the emulator does not import airflow
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
    proc, url, _ = _start_cli()
    try:
        resp = requests.get(f"{url}/me", params={"access_token": "emulator-token"}, timeout=5)
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_cli_state_file_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc, url, _ = _start_cli("--state", str(state))
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
    proc, url, _ = _start_cli("--state", str(state))
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
        keepalive = requests.Session()
        keepalive.get(
            f"{emu.url}/me", params={"access_token": "t1"}, timeout=5
        )  # an idle keep-alive connection
        started = time.monotonic()
    assert time.monotonic() - started < 3
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
