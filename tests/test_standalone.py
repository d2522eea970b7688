"""The repository stands alone: nothing in src/, tests/, docs/ or README.md reads or links the
project's shared folder beside it (a clone has none). The one exception is the real-Firecrawl
suite's source-folder setting (tests/upstream/firecrawl.py: `source_dir()`), which only gives
CREDITGATE_FIRECRAWL_SRC its default."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("src", "tests", "docs", "README.md")
SKIPPED_DIRS = {"node_modules", "__pycache__", "artifacts", ".mypy_cache", ".ruff_cache"}
# The folder reached upwards (with either slash), joined onto a parent path in Python, named by
# one of its own subfolders (spec, seeds, firecrawl, hooks), or by this machine's absolute path.
OUTSIDE = re.compile(
    r"\.\.[/\\]shared\b"
    r"|\bparents?(?:\[\d+\])?\s*/\s*[\"']shared\b"
    r"|\bshared/(?:spec|seeds|firecrawl|hooks|STYLE\.md)\b"
    r"|/work/share[d]\b"
)
ALLOWED = (("tests/upstream/firecrawl.py", "CREDITGATE_FIRECRAWL_SRC"),)


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        top = root / name
        if top.is_file():
            found.append(top)
            continue
        for path in sorted(top.rglob("*")):
            parts = set(path.relative_to(root).parts)
            if path.is_file() and not parts & SKIPPED_DIRS and ".egg-info" not in str(path):
                found.append(path)
    return found


def outside_references(root: Path) -> list[str]:
    """`path:line: text` of every line under `root` that reaches outside the repository."""
    hits: list[str] = []
    for path in _files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a binary file (an image) links nothing
        relative = path.relative_to(root).as_posix()
        for number, line in enumerate(text.splitlines(), 1):
            if not OUTSIDE.search(line):
                continue
            if any(relative == where and marker in line for where, marker in ALLOWED):
                continue
            hits.append(f"{relative}:{number}: {line.strip()}")
    return hits


def test_nothing_reads_or_links_the_shared_folder_beside_the_repository() -> None:
    assert outside_references(REPO) == []


def test_the_one_exception_is_the_firecrawl_source_setting() -> None:
    lines = (REPO / "tests/upstream/firecrawl.py").read_text().splitlines()
    reaching = [line.strip() for line in lines if OUTSIDE.search(line)]
    assert len(reaching) == 1 and "CREDITGATE_FIRECRAWL_SRC" in reaching[0]


def test_the_scan_finds_each_spelling(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "tests" / "node_modules").mkdir(parents=True)
    up = ".." + "/shared"  # split, so this file holds no reference itself
    (tmp_path / "README.md").write_text(f"see [the spec]({up}/spec/firecrawl-api.md)\n")
    (tmp_path / "docs" / "a.md").write_text("ok\nthe " + "shared/" + "seeds/ pages\n")
    (tmp_path / "src" / "b.py").write_text('SPEC = REPO.parent / "' + 'shared" / "spec"\n')
    (tmp_path / "tests" / "node_modules" / "c.js").write_text(f"{up}\n")  # not ours: skipped
    assert [hit.split(": ")[0] for hit in outside_references(tmp_path)] == [
        "src/b.py:1",
        "docs/a.md:2",
        "README.md:1",
    ]
