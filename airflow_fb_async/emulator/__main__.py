"""CLI: ``python -m airflow_fb_async.emulator [--host H] [--port P] [--token T]... ``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import GraphEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_fb_async.emulator",
        description="Local Facebook Graph / Marketing API emulator",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999, help="0 picks a free port")
    parser.add_argument("--token", action="append", default=[], help="a valid access token (repeatable)")
    parser.add_argument("--app-secret", default=None, help="enforce appsecret_proof with this app secret")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every Graph call")
    parser.add_argument(
        "--null-fraction", type=float, default=0.0, help="fraction of batch entries answered null"
    )
    parser.add_argument("--state", default=None, metavar="FILE", help="load/save objects and sets in FILE")
    parser.add_argument("--async-pace", type=float, default=200.0, help="async requests per second per set")
    args = parser.parse_args(argv)

    emu = GraphEmulator(
        host=args.host,
        port=args.port,
        tokens=args.token or None,
        app_secret=args.app_secret,
        latency=args.latency,
        null_fraction=args.null_fraction,
        state_file=args.state,
        async_pace=args.async_pace,
    )
    emu.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    tokens = len(args.token) or 1
    print(f"Graph emulator listening on {emu.url} ({tokens} token(s); Ctrl-C to stop)", flush=True)
    while not stop.wait(0.2):
        pass
    emu.stop()
    print("Graph emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
