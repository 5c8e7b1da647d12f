"""The documentation's links lead somewhere: every relative link in the repository's
Markdown names a file of the repository (and, with ``#anchor``, a heading of it), and every
``docs/*.md`` that code, tests and scripts name exists. Links out of the repository (a
design note on someone's machine) are the ones that rot unseen."""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[1]
SKIP = {".venv", "node_modules", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def _files(pattern: str) -> list[Path]:
    return sorted(p for p in REPO.rglob(pattern) if not SKIP & set(p.relative_to(REPO).parts))


MARKDOWN = _files("*.md")
_parser = MarkdownIt("commonmark")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@functools.cache
def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings (a repeated heading gets ``-1``, ``-2``...)."""
    tokens = _parser.parse(path.read_text("utf-8"))
    found: set[str] = set()
    times: dict[str, int] = {}
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            base = slug("".join(child.content for child in inline.children or []))
            found.add(f"{base}-{times[base]}" if base in times else base)
            times[base] = times.get(base, 0) + 1
    return found


def links(path: Path) -> list[str]:
    """Every link and image target in ``path`` (code blocks and spans excluded)."""
    found: list[str] = []
    for token in _parser.parse(path.read_text("utf-8")):
        for child in token.children or []:
            target = child.attrs.get("href") or child.attrs.get("src")
            if child.type in ("link_open", "image") and isinstance(target, str):
                found.append(target)
    return found


def broken_links(path: Path) -> list[str]:
    wrong = []
    for target in links(path):
        url = urlsplit(target)
        if url.scheme or url.netloc:  # http(s), mailto: outside the repository
            continue
        where = (path.parent / unquote(url.path)).resolve() if url.path else path
        if not where.is_relative_to(REPO) or not where.exists():
            wrong.append(f"{target}: no such file in the repository")
        elif url.fragment and where.suffix == ".md" and url.fragment not in anchors(where):
            wrong.append(f"{target}: no heading #{url.fragment} in {where.name}")
    return wrong


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_every_docs_page_named_in_code_exists() -> None:
    named = {
        (str(source.relative_to(REPO)), page)
        for pattern in ("*.py", "*.js", "*.sh", "*.toml")
        for source in _files(pattern)
        for page in re.findall(r"\bdocs/[\w.-]+\.md\b", source.read_text("utf-8"))
    } | {
        ("scripts/test", page)
        for page in re.findall(
            r"\bdocs/[\w.-]+\.md\b", (REPO / "scripts" / "test").read_text("utf-8")
        )
    }
    missing = sorted(
        f"{source} names {page}" for source, page in named if not (REPO / page).is_file()
    )
    assert missing == []


def test_no_design_notes_outside_the_repository_are_cited() -> None:
    # the plan the project started from is not shipped: its content lives in docs/
    cited = sorted(
        str(p.relative_to(REPO))
        for p in [*MARKDOWN, *_files("*.py")]
        if p != Path(__file__) and re.search(r"\bdesign\.md\b|\.\./shared/", p.read_text("utf-8"))
    )
    assert cited == []


def test_the_checker_sees_links_and_anchors() -> None:
    assert slug("12. Who sees and writes what") == "12-who-sees-and-writes-what"
    assert slug("`POST /v1/auth/token`") == "post-v1authtoken"
    assert "post-v1authtoken" in anchors(REPO / "docs" / "protocol.md")
    assert "protocol.md#12-who-sees-and-writes-what" in links(REPO / "docs" / "schema.md")
