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
        body = body.strip()
        # A role's text may not end in a space nor hold a backtick (a prose piece keeps its `code`).
        math = (mixed(body) or f":math:`{stacked(body.replace('`', chr(8216)))}`") if body else ""
        if prose:  # a row in words (a heading of the rows below it): text, which wraps
            math = escape_prose(prose)
        out += [f"   * - {names or ' '}", f"     - {math or escape_prose(note) or ' '}"]
        if math and note:
            out += ["", f"       {escape_prose(note)}"]
    return out


def stacked(body: str) -> str:
    """A table cell's equations, one under the other where the row separates them by `;`.

    `m <- b1 m + (1 - b1) g;  v <- ...;  u = ...` is three equations: stacked, they fit a column
    that the row written out would overflow."""
    parts, depth, start, k = [], 0, 0, 0
    while k < len(body):
        macro = re.match(r"\\([A-Za-z]+|.)", body[k:])
        if macro is not None:
            name = macro.group(1)
            k += len(macro.group())
            if name in ("left", "right"):  # \left( and \right): the delimiter after it is theirs
                depth += 1 if name == "left" else -1
                k += len(re.match(r"\\?.", body[k:]).group()) if k < len(body) else 0  # type: ignore[union-attr]
            continue
        if body[k] in "{([":
            depth += 1
        elif body[k] in "})]":
            depth -= 1
        elif depth == 0 and body.startswith(";\\quad ", k):
            parts.append(body[start : k + 1].strip())
            start = k + len(";\\quad ")
        k += 1
    parts.append(body[start:].strip())
    if len(parts) == 1:
        return "\\displaystyle " + body
    rows = " \\\\[2pt] ".join("\\displaystyle " + part for part in parts if part)
    return "\\begin{array}{l} " + rows + " \\end{array}"


SPACES = {"quad", "qquad", " "}  # the spacing macros that join words (a thin space joins factors)


def mixed(body: str) -> str:
    """A table cell that holds prose as well as math, as text with inline math, or "" if all math.

    `as Adam, dividing by the running maximum of v^` is words around one symbol: set as math, it
    would neither wrap nor read as prose. As text, a phone wraps it like any sentence."""
    pieces: list[tuple[str, str]] = []  # (kind, content): "text" as written, "math" in LaTeX
    depth, k, run = 0, 0, ""
    while k < len(body):
        macro = re.match(r"\\([A-Za-z]+|.)", body[k:])
        if depth == 0 and body.startswith("\\text{", k):
            end = housemath.closing_brace(body, k + len("\\text"))
            pieces += [("math", run), ("text", body[k + len("\\text{") : end - 1])]
            run, k = "", end
            continue
        if depth == 0 and macro is not None and macro.group(1) in SPACES:
            pieces += [("math", run), ("space", "")]
            run, k = "", k + len(macro.group())
            continue
        if macro is not None:
            depth += {"left": 1, "right": -1}.get(macro.group(1), 0)
            run, k = run + macro.group(), k + len(macro.group())
            continue
        depth += {"{": 1, "}": -1, "(": 1, ")": -1, "[": 1, "]": -1}.get(body[k], 0)
        run, k = run + body[k], k + 1
    pieces.append(("math", run))
    if not any(kind == "text" for kind, _ in pieces):
        return ""
    out = ""
    for kind, content in pieces:
        content = content.strip()
        if kind == "space" or not content:
            out += " " if out and not out.endswith(" ") else ""
        elif kind == "text" or re.fullmatch(r"[,;:.()]+", content):
            text = content.replace("\\", "").replace(housemath.TEXT_LOOKALIKES["^"], "^")
            joined = not out or out.endswith((" ", "(")) or text[:1] in ",;:.)"
            out += ("" if joined else " ") + escape_prose(text)
        else:
            content, tail = re.fullmatch(r"(.*?)([,;]?)", content, re.DOTALL).groups()  # type: ignore[union-attr]
            out += ("" if not out or out.endswith((" ", "(")) else " ") + f":math:`\\displaystyle {content}`" + tail
    return re.sub(r" +([,;.)]|:(?!math:))", r"\1", out).strip()


def shown_math(body: str) -> list[str]:
    """The LaTeX the site shows for a table cell's equations (what MathJax must parse)."""
    return re.findall(r":math:`(.*?)`", mixed(body)) or [stacked(body)]


def docstring_lines(doc: str | None) -> list[str]:
    return inspect.cleandoc(doc).splitlines() if doc else []
