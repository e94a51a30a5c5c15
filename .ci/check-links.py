#!/usr/bin/env python3
"""Checks every relative link and anchor in README.md, scenarios/README.md and docs/**/*.md.

mdbook-linkcheck (run by `mdbook build`) checks that the files a page links to exist and that
every page linked is in docs/SUMMARY.md, but not anchors, and it does not see the README. This
checks both: a link's file must exist, and a `#fragment` into a Markdown file (or the page
itself) must name one of its headings, slugged as GitHub and mdBook do (lower case; letters,
digits, `-` and `_` kept; each space a `-`; other characters dropped; `-1`, `-2` for repeats).
Offline: web links (any `scheme:`) are not checked. Exit 1 with one line per broken link.
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def prose_lines(text):
    """The lines outside fenced code blocks, with their numbers."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield number, line


def slug(heading):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").replace("*", "")
    out = []
    for ch in text.lower():
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen = {}
        found = set()
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        _anchors[path] = found
    return _anchors[path]


def paragraphs(text):
    """The prose in blocks of consecutive lines (a link may wrap), with each block's first line."""
    block, start, last = [], 0, -1
    for number, line in prose_lines(text):
        if block and (not line.strip() or number != last + 1):
            yield start, " ".join(block)
            block = []
        if line.strip():
            if not block:
                start = number
            block.append(line.strip())
        last = number
    if block:
        yield start, " ".join(block)


def check(path):
    errors = []
    for number, line in paragraphs(path.read_text(encoding="utf-8")):
        line = re.sub(r"(`+).*?\1", "", line)  # links are not looked for in code spans
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("/"):
                continue
            file_part, _, fragment = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{number}: {target}"
            if not dest.exists():
                errors.append(f"{where}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                errors.append(f"{where}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    return errors


def main():
    files = [ROOT / "README.md", ROOT / "scenarios/README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    errors = [e for f in files for e in check(f)]
    for e in errors:
        print(e)
    print(f"links: {len(files)} files checked, {len(errors)} broken")
    return 1 if errors else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
