"""The docs point only at files that exist: README.md and docs/*.md, links and quoted repository paths.

A link to a file outside the repository (another checkout's notes, a deleted module) is a dead
end for every reader of a clone or a package, so it fails here rather than in a reader's browser.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# [text](target) and [text]: target; the target up to whitespace, ")" or a title.
_MD_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
# `path` naming a repository file or folder: starts at a top-level folder, or with ./ or ../
_TOP_LEVEL = ("airflow_fb_async/", "benchmarks/", "dags_examples/", "docs/", "scripts/", "tests/")
_CODE_SPAN = re.compile(r"`([^`\s]+)`")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|//)", re.I)


def _without_code_blocks(text: str) -> str:
    """Fenced code blocks hold shell sessions and snippets, not references: leave them out."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def referenced_paths(doc: Path) -> list[tuple[str, Path]]:
    """(as written, resolved path) of every relative link and quoted repository path in ``doc``."""
    text = _without_code_blocks(doc.read_text(encoding="utf-8"))
    found: list[tuple[str, Path]] = []
    for match in _MD_LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if _EXTERNAL.match(target):
            continue
        found.append((target, doc.parent / target.split("#", 1)[0]))
    for match in _CODE_SPAN.finditer(text):
        span = match.group(1)
        if span.startswith(("./", "../")):
            found.append((span, doc.parent / span))
        elif span.startswith(_TOP_LEVEL) and not any(c in span for c in "*?<>{}|["):
            found.append((span, REPO / span))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_relative_reference_exists_in_the_repository(doc: Path) -> None:
    missing = []
    for written, path in referenced_paths(doc):
        resolved = path.resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            missing.append(written)
    assert missing == [], f"{doc.relative_to(REPO)} refers to files not in the repository: {missing}"


def test_the_checker_sees_links_and_quoted_paths(tmp_path: Path) -> None:
    """The checker itself: a link, a reference-style link and quoted paths are all found."""
    doc = tmp_path / "x.md"
    doc.write_text(
        "See [a](other.md#part), [b](https://example.com), `../shared/API.md`, `tests/nope.py`.\n"
        "[ref]: ./ref.md\n```\n[c](in_code.md)\n```\n",
        encoding="utf-8",
    )
    written = [w for w, _ in referenced_paths(doc)]
    assert written == ["other.md#part", "./ref.md", "../shared/API.md", "tests/nope.py"]


def test_readme_links_the_design_and_guarantee_docs() -> None:
    links = {w for w, _ in referenced_paths(REPO / "README.md")}
    assert {"docs/graph-facts.md", "docs/exactly-once.md", "docs/emulator.md"} <= links
