"""gradtx's docstrings as reStructuredText, for Sphinx's autodoc.

gradtx's docstrings are written for `help()`: prose with `backticks` for code, indented
plain-text equation blocks, indented code, `>>>` examples and `- ` lists. This module gives
Sphinx the same text with each part marked up:

- equation blocks become `.. math::` (LaTeX from `housemath`),
- other indented blocks become literal `text` blocks, examples stay doctest blocks,
- in prose, the characters reStructuredText would read as markup (`*args`, `|g|`, `name_`) are
  escaped, and `backticks` become cross-references where the name exists (Sphinx's default role).

Nothing here imports Sphinx, so `tests/test_docs.py` runs it over every docstring.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import housemath

EMPHASIS = re.compile(r"(?<![\w*\\])\*(?=[^\s*])([^*]*?[^\s*\\])\*(?![\w*])")
CODE_SPAN = re.compile(r"(``.+?``|`[^`]+`)")


@dataclass
class Converted:
    lines: list[str]
    problems: list[str] = field(default_factory=list)  # equation pieces that stayed text
    blocks: int = 0  # equation blocks rendered as math


def escape_prose(line: str) -> str:
    """Escape what reStructuredText would take for markup, outside `code` spans."""
    out = []
    for k, part in enumerate(CODE_SPAN.split(line)):
        if k % 2:  # a `code` span: kept; a trailing underscore would make it a hyperlink
            out.append(part)
            continue
        kept = []
        last = 0
        for m in EMPHASIS.finditer(part):  # *emphasis* stays emphasis
            kept.append(_escape(part[last : m.start()]))
            kept.append(m.group())
            last = m.end()
        kept.append(_escape(part[last:]))
        out.append("".join(kept))
    return "".join(out)


def _escape(s: str) -> str:
    s = s.replace("\\", "\\\\").replace("*", r"\*").replace("|", r"\|")
    return re.sub(r"(?<=\w)_(?=\W|$)", r"\\_", s)


def names_of(obj: Any) -> set[str]:
    """The names an object's equations may use as symbols: its arguments, its fields, and for a
    function the state fields of the module that defines it (its family's state)."""
    names: set[str] = set()
    targets = [obj]
    if inspect.ismodule(obj):
        targets = [v for v in vars(obj).values() if getattr(v, "__module__", None) == obj.__name__]
    elif (module := sys.modules.get(getattr(obj, "__module__", None) or "")) is not None:
        names |= {f for v in vars(module).values() if inspect.isclass(v) and v.__module__ == module.__name__
                  for f in fields_of(v)}  # fmt: skip
    for target in targets:
        if callable(target):
            with contextlib.suppress(TypeError, ValueError):  # builtins without a signature
                names |= set(inspect.signature(target).parameters)
        names |= fields_of(target)
    return names


def fields_of(obj: Any) -> set[str]:
    """A NamedTuple's or a dataclass's field names."""
    if dataclasses.is_dataclass(obj):
        return {f.name for f in dataclasses.fields(obj)}
    return set(getattr(obj, "_fields", ()))


def convert(lines: list[str], names: Iterable[str] = ()) -> Converted:
    """A docstring's lines (dedented as autodoc gives them) as reStructuredText lines."""
    out: list[str] = []
    result = Converted(out)
    in_list = False

    def blank() -> None:
        if out and out[-1].strip():
            out.append("")

    for seg in housemath.split_docstring(lines):
        if seg.kind == "blank":
            blank()
            in_list = False
        elif seg.kind == "text":
            for line in seg.lines:
                item = housemath.LIST_ITEM.match(line)
                if item and not in_list:
                    blank()
                elif in_list and not item and not line.startswith(" "):
                    blank()  # the list ends: reStructuredText wants a blank line
                    in_list = False
                in_list = in_list or bool(item)
                out.append(escape_prose(line))
        elif seg.kind == "doctest":
            blank()
            indent = min(len(x) - len(x.lstrip()) for x in seg.lines if x.strip())
            out.extend(x[indent:] for x in seg.lines)
            out.append("")
        elif seg.kind == "math":
            rendered = housemath.render_block(seg.lines, names)
            result.problems.extend(rendered.problems)
            result.blocks += 1
            blank()
            out.extend(math_table(rendered.table) if rendered.table else math_directive(rendered.latex))
            out.append("")
        else:  # code
            blank()
            indent = min(len(x) - len(x.lstrip()) for x in seg.lines if x.strip())
            out.extend([".. code-block:: text", ""])
            out.extend("   " + x[indent:] for x in seg.lines)
            out.append("")
    while out and not out[-1].strip():
        out.pop()
    return result


def math_directive(latex: str) -> list[str]:
    """A `.. math::` directive that shows `latex` as it is (Sphinx would wrap rows in `split`)."""
    body = ["\\[", *latex.splitlines(), "\\]"]
    return [".. math::", "   :nowrap:", "   :class: house-equations", "", *("   " + row for row in body)]


def math_table(rows: list[tuple[list[str], str, str, str]]) -> list[str]:
    """A labelled block (one row per transformation) as a table: the names, then the math and its note.

    A table wraps on a narrow screen where one wide equation array would not; the note goes under
    its equations, so that the widest equation alone sets the table's width."""
    out = [".. list-table::", "   :class: house-equations-table", "   :widths: 30 70", ""]
    for labels, body, note, prose in rows:
        labels = [label.removesuffix(":") for label in labels]
        names = " ".join(f"``{label}``" if re.fullmatch(r"[\w.]+(\(.*\))?", label) else escape_prose(label)
                         for label in labels)  # fmt: skip
        body = body.strip().replace("`", chr(8216))  # a role's text may not end in a space nor hold a backtick
        math = f":math:`\\displaystyle {body}`" if body else ""
        if prose:  # a row in words (a heading of the rows below it): text, which wraps
            math = escape_prose(prose)
        out += [f"   * - {names or ' '}", f"     - {math or escape_prose(note) or ' '}"]
        if math and note:
            out += ["", f"       {escape_prose(note)}"]
    return out


def docstring_lines(doc: str | None) -> list[str]:
    return inspect.cleandoc(doc).splitlines() if doc else []
