"""The documentation stays a front door and stays true: README.md is at most 250 lines, every
relative link in README.md and docs/*.md reaches a file (and its heading, when it names one),
every repository path the docs cite in backticks exists, and no code, contract or DAG cites a
tracker row instead of saying why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250
# Backticked paths under these folders are checked against the tree.
CITED_ROOTS = (
    "scoring/",
    "dags/",
    "tests/",
    "config/",
    "expectations/",
    "deploy/",
    "docs/",
    "bench/",
    "plugins/",
    ".ci/",
)
# Parts of the restructure the README already describes while they land in parallel; remove an
# entry once it is on main (the test then checks it like any other path).
PENDING: tuple[str, ...] = ()
# A tracker reference: "issue #21", "issue 14", "seed 004", "row 19". Built from pieces so that
# this file does not match itself.
TRACKER = re.compile(
    "|".join([r"\bissue #?[0-9]+", r"\bseed 0[0-9]+", r"(?<![-\w])rows? [0-9]+\b"]), re.I
)
TRACKER_FREE = ("scoring", "dags", "expectations")

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    """Relative links in one Markdown file whose file or heading does not exist."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    problems = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{path.name}: {target} (no such heading)")
    return problems


def missing_paths(path: Path, repo: Path = REPO) -> list[str]:
    """Repository paths cited in backticks (relative to the repository root) that do not exist."""
    text = path.read_text(encoding="utf-8")
    problems = []
    for span in CODE_SPAN.findall(text):
        if not span.startswith(CITED_ROOTS) or not re.fullmatch(r"[\w./-]+", span):
            continue  # not a path, or a pattern such as tests/<package>/test_*.py
        if span.startswith(PENDING):
            continue
        if not (repo / span).exists():
            problems.append(f"{path.name}: `{span}`")
    return problems


def tracker_references(root: Path) -> list[str]:
    found = []
    for folder in TRACKER_FREE:
        for file in sorted((root / folder).rglob("*")):
            if not file.is_file() or file.suffix not in {".py", ".yaml", ".yml", ".md", ".sql"}:
                continue
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if TRACKER.search(line):
                    found.append(f"{file.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_readme_links_every_doc():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in doc_files()[1:] if f"(docs/{p.name}" not in readme]
    assert not unlinked, f"docs not linked from README.md: {unlinked}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    assert not broken_links(path)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_cited_paths_exist(path):
    assert not missing_paths(path)


def test_no_tracker_references_in_code():
    found = tracker_references(REPO)
    assert not found, "say why, not which tracker row:\n" + "\n".join(found)


def test_checks_catch_what_they_guard(tmp_path):
    """Each check above fails on a planted fault (so none of them can pass vacuously)."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Real heading\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md#real-heading) [gone](docs/b.md) [bad](docs/a.md#nope)\n"
        "```\n[in a fence](ignored.md)\n```\n`scoring/absent.py` `tests/<package>/x.py`\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#nope (no such heading)",
    ]
    assert missing_paths(page, tmp_path) == ["README.md: `scoring/absent.py`"]
    (tmp_path / "scoring").mkdir()
    planted = "# see " + "issue " + "#21; " + "seed " + "004 " + "row 19\n"
    (tmp_path / "scoring" / "m.py").write_text(
        planted + "x = 1  # rows are kept, --rows 1000 is an option\n"
    )
    assert len(tracker_references(tmp_path)) == 1
    assert (
        slug("Night after night: six weeks and a year") == "night-after-night-six-weeks-and-a-year"
    )
