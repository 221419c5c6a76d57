"""The e2e's verdicts: what Graph holds against what the runs intend, and where the token appears.

Graph side: every object and request set the emulator holds is grouped by ad account and type and
compared with the run that owns the account (a duplicate set or object is an excess; anything on an
account no run owns is an excess too). Token side: every line of every log file (Airflow's task,
triggerer and component logs, the services' own output), every row of a plain-SQL dump of the
metadata DB and Redis' dataset saved to disk are searched for the token, with positive controls
proving the scans read what they claim (task log lines of the runs, the connection's row).
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenario import Run


@dataclass
class GraphVerdict:
    """Graph's content against the runs' intent; each row is (account, what, intended, found)."""

    rows: list[tuple[str, str, int, int]]
    excess: int  # duplicates, and anything on an account no run owns
    missing: int

    @property
    def ok(self) -> bool:
        return self.excess == 0 and self.missing == 0 and all(e == a for _, _, e, a in self.rows)


def check_graph(objects: list[dict[str, Any]], counters: dict[str, Any], runs: Iterable[Run]) -> GraphVerdict:
    """Objects per (account, type), async requests per (account, status), and the emulator's counters."""
    found: Counter[tuple[str, str]] = Counter()
    for obj in objects:
        account = f"act_{obj.get('account_id')}"
        what = f"requests {obj['status']}" if obj["type"] == "async_request" else obj["type"]
        found[(account, what)] += 1
    intended: Counter[tuple[str, str]] = Counter()
    for run in runs:
        intended.update({(run.account, t): n for t, n in run.expect_objects.items()})
        intended.update({(run.account, f"requests {s}"): n for s, n in run.expect_requests.items()})
    rows = [(acc, what, intended[(acc, what)], found[(acc, what)]) for acc, what in sorted(intended | found)]
    excess = sum(max(0, a - e) for _, _, e, a in rows)
    missing = sum(max(0, e - a) for _, _, e, a in rows)
    sets = sum(n for (_, what), n in intended.items() if what == "async_request_set")
    made = sum(
        n
        for (_, what), n in intended.items()
        if what != "async_request_set" and not what.startswith("requests ")
    )
    rows.append(("(counters)", "request_sets_created", sets, int(counters["request_sets_created"])))
    rows.append(("(counters)", "objects_created", made, int(counters["objects_created"])))
    return GraphVerdict(rows, excess, missing)


@dataclass
class Scan:
    """Where a secret was searched and where it was found."""

    what: str
    units: int  # lines or rows searched
    hits: list[str]
    control: int  # lines/rows a positive control found (must be > 0)


def scan_logs(token: str, roots: list[Path], control: str) -> Scan:
    """Every line of every file under ``roots``; ``control`` must occur somewhere (the runs' task logs)."""
    needle, probe = token.encode(), control.encode()
    lines = found = 0
    hits: list[str] = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                lines += 1
                if needle in line:
                    hits.append(f"{path}:{number}")
                if probe in line:
                    found += 1
    return Scan("log lines", lines, hits, found)


def scan_sql_dump(token: str, dump: Path, control: str) -> Scan:
    """Each data row of a plain-SQL dump (``COPY ... FROM stdin`` blocks: one row per line)."""
    needle, probe = token.encode(), control.encode()
    rows = found = 0
    hits: list[str] = []
    table = b""
    for line in dump.read_bytes().splitlines():
        if line.startswith(b"COPY "):
            table = line.split(b" ")[1]
            continue
        if line == b"\\.":
            table = b""
            continue
        if table:
            rows += 1
            if needle in line:
                hits.append(f"table {table.decode()}: {line.replace(needle, b'<TOKEN>')[:80]!r}")
            if probe in line:
                found += 1
    return Scan("metadata DB rows", rows, hits, found)


def scan_blob(token: str, blob: Path, what: str, control: str) -> Scan:
    """A binary dump searched whole (Redis' RDB file), for the token as is and base64-encoded.

    Celery messages carry their body base64-encoded: the token would hide there from a plain search,
    so its three base64 alignments are searched too (each with the characters that depend on the
    neighbours trimmed off).
    """
    data = blob.read_bytes() if blob.exists() else b""
    needles = [token.encode(), *base64_forms(token.encode())]
    hits = [f"{blob} offset {data.index(n)}" for n in needles if n in data]
    return Scan(what, len(data), hits, data.count(control.encode()))


def base64_forms(secret: bytes) -> list[bytes]:
    """The parts of ``base64(prefix + secret + suffix)`` that are the same whatever the prefix and suffix."""
    forms = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret)
        start = (shift * 4 + 2) // 3  # characters touched by the unknown prefix
        usable = (len(secret) + shift) // 3 * 4  # whole groups only: the suffix changes the last one
        forms.append(encoded[start:usable])
    return forms


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table with a header rule, columns as wide as their widest cell."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
