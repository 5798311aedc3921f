"""Every relative link in the documentation resolves.

The documentation is README.md, docs/*.md and bench/RESULTS.md. A link ``[text](path)``,
``[text](path#anchor)``, ``[text](#anchor)`` (or a reference definition ``[ref]: path``) must
name a file or folder that exists relative to the linking file; an anchor into a Markdown file
must be produced by one of that file's headings under GitHub's slug rules. http(s) and mailto
links are not checked, and neither is anything inside a fenced code block or an inline code span.
Standard library only.
"""

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SKIPPED_SCHEMES = ("http://", "https://", "mailto:")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]


def outside_code(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line not in a fenced code block, inline code spans removed."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end() :].strip():
                fence = None
        else:
            out.append((number, CODE_SPAN.sub("", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: links reduced to their text, lowercased, every
    character but letters, digits, spaces, hyphens and underscores removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor the Markdown file's ATX headings produce; a repeated slug gets -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    fence = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end() :].strip():
                fence = None
            continue
        h = ATX_HEADING.match(line)
        if not h:
            continue
        base = slug(h.group(2) or "")
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link outside code in the file."""
    out = []
    for number, line in outside_code(path.read_text(encoding="utf-8")):
        out += [(number, m.group(1)) for m in INLINE_LINK.finditer(line)]
        d = REFERENCE_DEF.match(line)
        if d:
            out.append((number, d.group(1)))
    return out


def broken_links(files: list[Path]) -> list[tuple[Path, int, str, str]]:
    """(file, line, target, why) for every relative link that does not resolve."""
    broken = []
    for path in files:
        for number, target in links(path):
            if not target or target.lower().startswith(SKIPPED_SCHEMES):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / unquote(file_part)).resolve() if file_part else path
            if not dest.exists():
                broken.append((path, number, target, f"no such file: {dest}"))
            elif anchor and dest.suffix.lower() == ".md" and unquote(anchor).lower() not in anchors(dest):
                broken.append((path, number, target, f"no heading of {dest.name} makes the anchor #{anchor}"))
    return broken


def test_every_relative_link_in_the_docs_resolves():
    broken = [f"{p.relative_to(ROOT)}:{n}: {target}: {why}" for p, n, target, why in broken_links(doc_files())]
    assert broken == []


def test_the_checker_reports_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "b.md").write_text("# Setting up\n\n## Setting up\n\n```\n# not a heading\n```\n")
    (tmp_path / "a.md").write_text(
        "# Top: the `synth` CLI\n\n"
        "[fine](b.md#setting-up-1), [fine too](#top-the-synth-cli), [web](https://example.com/x.md)\n"
        "[gone](missing.md) and [no such heading](b.md#not-a-heading)\n\n"
        "```\n[inside a fence](nowhere.md)\n```\n"
        "`[inside code](nowhere.md)`\n"
    )
    found = [(p.name, target) for p, _, target, _ in broken_links([tmp_path / "a.md"])]
    assert found == [("a.md", "missing.md"), ("a.md", "b.md#not-a-heading")]


def test_slugs_follow_github_rules():
    headings = [
        "The loop: training the next generator",
        "Installing: the lock, CPU and GPU",
        "`synth run` and  friends",
        "Batched decoding (2026-12-02)",
        "snake_case-stays",
    ]
    assert [slug(h) for h in headings] == [
        "the-loop-training-the-next-generator",
        "installing-the-lock-cpu-and-gpu",
        "synth-run-and--friends",
        "batched-decoding-2026-12-02",
        "snake_case-stays",
    ]


if __name__ == "__main__":
    problems = broken_links(doc_files())
    for p, n, target, why in problems:
        print(f"{p.relative_to(ROOT)}:{n}: {target}: {why}")
    raise SystemExit(1 if problems else 0)
