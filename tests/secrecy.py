"""Token secrecy sweep: every test runs with a long distinctive token; nothing may ever show it.

After each test phase, the captured stdout, stderr and log records (captured at DEBUG, so library
debug output such as urllib3's request lines counts too) and any failure text are scanned for the
token, raw and URL-encoded. A hit fails that test. At the end of the session the metadata DB
(XComs, trigger kwargs, task instances) and every file written under AIRFLOW_HOME and pytest's
temporary directories are scanned too, and the totals are printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest


@dataclass
class Sweep:
    token: str
    phases: int = 0
    chars: int = 0
    files: int = 0
    file_bytes: int = 0
    hits: list[str] = field(default_factory=list)

    @property
    def forms(self) -> set[str]:
        return {self.token, quote(self.token, safe=""), quote_plus(self.token)}

    def leaked(self, text: str) -> bool:
        return any(form in text for form in self.forms)

    def scan_tree(self, root: Path) -> None:
        if not root.exists():
            return
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            self.files += 1
            self.file_bytes += len(data)
            if any(form.encode() in data for form in self.forms):
                self.hits.append(f"file {path}")


_SWEEP: Sweep | None = None


def install(token: str) -> None:
    global _SWEEP
    _SWEEP = Sweep(token)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if _SWEEP is None:
        return
    # Sections accumulate over phases: scan only this phase's own captures.
    texts = [content for name, content in report.sections if name.endswith(f" {report.when}")]
    if report.longrepr is not None:
        texts.append(str(report.longrepr))
    _SWEEP.phases += 1
    for text in texts:
        _SWEEP.chars += len(text)
        if _SWEEP.leaked(text):
            _SWEEP.hits.append(f"{item.nodeid} ({report.when})")
            report.outcome = "failed"
            report.longrepr = (
                f"access token leaked into captured output/logs of {item.nodeid} ({report.when})"
            )
            break


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SWEEP is None:
        return
    _SWEEP.scan_tree(Path(os.environ["AIRFLOW_HOME"]))
    basetemp = (
        session.config._tmp_path_factory.getbasetemp()
        if hasattr(session.config, "_tmp_path_factory")
        else None
    )  # type: ignore[attr-defined]
    if basetemp is not None:
        _SWEEP.scan_tree(Path(basetemp))
    if _SWEEP.hits and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int) -> None:  # type: ignore[no-untyped-def]
    if _SWEEP is None:
        return
    terminalreporter.write_line(
        f"token secrecy sweep: {_SWEEP.phases} test phases, {_SWEEP.chars / 1e6:.1f} M chars of output/logs, "
        f"{_SWEEP.files} files ({_SWEEP.file_bytes / 1e6:.1f} MB incl. the metadata DB) scanned: "
        f"{len(_SWEEP.hits)} hits"
    )
    for hit in _SWEEP.hits:
        terminalreporter.write_line(f"  LEAK: {hit}")
