"""Regenerate the blocks of docs/results.md that come from stored benchmark outputs; leave the rest byte for byte.

    python benchmarks/results_doc.py            # rewrite the generated blocks (make results-doc)
    python benchmarks/results_doc.py --check    # exit 1 naming the first stale block; write nothing

A block is delimited by

    <!-- generated from benchmarks/results/X.md: do not edit -->            the whole stored markdown
    <!-- generated from benchmarks/results/X.md, table N: do not edit -->   its N-th table (1-based)
    <!-- generated from benchmarks/results/X.json, table NAME: do not edit -->  rendered by _doc_tables.TABLES
    ...
    <!-- end generated -->

A whole stored markdown has its headings shifted so that its top heading is a section (``##``) of the doc.
Every source is read before anything is written; a missing or unreadable one is a one-line error and the doc is
left untouched (the write itself is atomic).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from _doc_tables import TABLES

from biolatent.rundir import write_text

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results.md"
START = re.compile(r"^<!-- generated from (?P<source>\S+?)(?:, table (?P<table>[\w-]+))?: do not edit -->\n",
                   re.MULTILINE)
END = "<!-- end generated -->"
END_LINE = re.compile(r"^<!-- end generated -->$", re.MULTILINE)
TOP_LEVEL = 2  # a whole stored markdown becomes a ``##`` section


class ResultsDocError(Exception):
    """A doc or stored output that cannot be regenerated: the message is one line."""


@dataclass(frozen=True)
class Block:
    source: str  # path relative to the repository root, as written in the marker
    table: str | None
    start: int  # offset of the first character of the content (after the start marker line)
    end: int  # offset of the end marker

    @property
    def name(self) -> str:
        return self.source + (f", table {self.table}" if self.table else "")


def find_blocks(doc: str) -> list[Block]:
    """Every generated block of ``doc``, in order (markers are whole lines); unbalanced or nested markers are an
    error."""
    blocks = []
    position = 0
    while (match := START.search(doc, position)) is not None:
        end = END_LINE.search(doc, match.end())
        following = START.search(doc, match.end())
        if end is None or (following is not None and following.start() < end.start()):
            raise ResultsDocError(f"block '{match['source']}' has no '{END}' line before the next block")
        blocks.append(Block(match["source"], match["table"], match.end(), end.start()))
        position = end.end()
    if len(END_LINE.findall(doc)) != len(blocks):
        raise ResultsDocError(f"a '{END}' line without a start marker")
    return blocks


def shift_headings(markdown: str, top: int = TOP_LEVEL) -> str:
    """Shift every ATX heading (outside code fences) so the shallowest one has level ``top``."""
    lines = markdown.split("\n")
    fenced = False
    levels = []
    for line in lines:
        fenced ^= line.startswith("```")
        if not fenced and (m := re.match(r"(#+) ", line)):
            levels.append(len(m[1]))
    if not levels:
        return markdown
    delta = top - min(levels)
    out, fenced = [], False
    for line in lines:
        fenced ^= line.startswith("```")
        if not fenced and (m := re.match(r"(#+) ", line)):
            line = "#" * (len(m[1]) + delta) + line[len(m[1]):]
        out.append(line)
    return "\n".join(out)


def nth_table(markdown: str, n: int) -> str:
    """The ``n``-th (1-based) pipe table of ``markdown``."""
    tables, current = [], []
    for line in [*markdown.split("\n"), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    if not 1 <= n <= len(tables):
        raise ResultsDocError(f"asks for table {n}, the stored output has {len(tables)}")
    return tables[n - 1]


def render(block: Block, root: Path) -> str:
    """The content a block should have (between blank lines), from its stored output under ``root``."""
    path = root / block.source
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsDocError(f"block '{block.name}': cannot read {path} ({exc.strerror or exc})") from None
    try:
        if path.suffix == ".md":
            if block.table is None:
                content = shift_headings(text.strip())
            elif block.table.isdigit():
                content = nth_table(text, int(block.table))
            else:
                raise ResultsDocError(f"a markdown source takes a table number, not '{block.table}'")
        elif path.suffix == ".json":
            if block.table not in TABLES:
                raise ResultsDocError(f"unknown table '{block.table}' (known: {', '.join(sorted(TABLES))})")
            content = TABLES[block.table].render(json.loads(text))
        else:
            raise ResultsDocError("the source must be a .md or .json file")
    except ResultsDocError as exc:
        raise ResultsDocError(f"block '{block.name}': {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultsDocError(f"block '{block.name}': cannot render {path.name} ({exc})") from None
    return f"\n{content}\n\n"  # blank lines keep the markers out of the table


def regenerate(doc: str, root: Path) -> tuple[str, str | None]:
    """``doc`` with every block regenerated, and the name of the first block that changed (None if none)."""
    pieces, position, first_stale = [], 0, None
    for block in find_blocks(doc):
        content = render(block, root)
        if first_stale is None and doc[block.start:block.end] != content:
            first_stale = block.name
        pieces += [doc[position:block.start], content]
        position = block.end
    pieces.append(doc[position:])
    return "".join(pieces), first_stale


def run(doc_path: Path, root: Path, check: bool) -> int:
    try:
        doc = doc_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsDocError(f"cannot read {doc_path} ({exc.strerror or exc})") from None
    new, stale = regenerate(doc, root)
    if check:
        if stale is not None:
            print(f"stale: block '{stale}' of {doc_path} differs from the stored output; run "
                  "`python benchmarks/results_doc.py`", file=sys.stderr)
            return 1
        print(f"{doc_path}: {len(find_blocks(doc))} generated blocks, all up to date")
        return 0
    if new != doc:
        write_text(doc_path, new)
    print(f"{doc_path}: {len(find_blocks(doc))} generated blocks" + (f", rewritten from '{stale}' on"
                                                                     if stale else ", unchanged"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--doc", type=Path, default=DOC, help="the document (default: docs/results.md)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="folder the markers' paths are relative to (default: the repository)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a block differs; write nothing")
    args = parser.parse_args(argv)
    try:
        return run(args.doc, args.root, args.check)
    except ResultsDocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
