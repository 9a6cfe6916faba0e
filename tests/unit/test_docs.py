"""The README stays the short front door, and the documentation's links lead somewhere.

* README.md is under 10 KiB and opens with the two set-up commands, ``make run`` and
  ``make test``;
* its command table names every ``make`` target the Makefile documents and every ``wattstream``
  command and ``wattstream services`` action the CLI offers;
* every relative link in README.md and docs/*.md points to an existing file, and a ``#fragment``
  to a heading of that file (GitHub's anchors).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
README_MAX_BYTES = 10_240
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def _prose(text: str) -> str:
    """The Markdown without fenced code blocks and code spans (no links live there)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, and
    ``-1``, ``-2``, ... on repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(page: Path) -> list[str]:
    return [
        target
        for target in _LINK.findall(_prose(page.read_text(encoding="utf-8")))
        if not urlsplit(target).scheme
    ]


def test_there_are_docs_pages() -> None:
    assert len(PAGES) > 1, "docs/*.md is missing"


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size < README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_readme_opens_with_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert first_block is not None
    before = text[: first_block.start()].strip().splitlines()
    assert all(line.startswith("#") for line in before), "the commands come before any prose"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _relative_links(page):
        parts = urlsplit(target)
        path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif parts.fragment and path.suffix == ".md" and parts.fragment not in _anchors(path):
            broken.append(f"{target}: no heading #{parts.fragment} in {path.name}")
    assert not broken, broken


def test_the_link_check_sees_links() -> None:
    """Guards the pattern above: a page with links whose check found none would pass."""
    assert "docs/storage.md" in _relative_links(README)
    assert "../bench/results/pipeline.md" in _relative_links(REPO_ROOT / "docs" / "benchmarks.md")
    assert "the-parts-make-bench-parts" in _anchors(REPO_ROOT / "docs" / "benchmarks.md")
    assert "mosquitto-kill--9" in _anchors(REPO_ROOT / "docs" / "delivery-audit-and-chaos.md")


def test_readme_names_every_make_target() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.MULTILINE)
    assert "run" in targets
    readme = README.read_text(encoding="utf-8")
    assert [t for t in targets if not re.search(rf"`make {t}[` ]", readme)] == []


def _help(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "wattstream", *args, "--help"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    ).stdout


def test_readme_names_every_wattstream_command() -> None:
    readme = README.read_text(encoding="utf-8")
    listed = _help().split("positional arguments:", 1)[1].split("options:", 1)[0]
    commands = re.findall(r"^ {4}([a-z][a-z-]*)\b", listed, re.MULTILINE)
    assert "services" in commands
    assert [c for c in commands if f"`wattstream {c}" not in readme] == []

    listed = _help("services").split("positional arguments:", 1)[1].split("options:", 1)[0]
    actions = re.findall(r"^ {4}([a-z][a-z-]*)\b", listed, re.MULTILINE)
    assert "up" in actions
    services_rows = [line for line in readme.splitlines() if "`wattstream services " in line]
    missing = [a for a in actions if not any(a in r for r in services_rows)]
    assert missing == []
