"""The Sphinx extension that writes gradtx's generated pages and renders its docstrings.

At `builder-inited` it writes, into folders that git ignores:

- `api/`: one page per module that holds a public name, grouped by package, generated from
  `gradtx.__all__` (plus the public top-level modules no name lives in, such as `gradtx.testing`).
  Each object goes on the page of the module it is defined in (`obj.__module__`); a module's or
  package's docstring gives its page's title (the words before the first colon) and intro. Nothing
  names a module or a public name here: a new entry in `gradtx.__all__` gets its place by itself.
- `notebooks/`: the notebooks of `notebooks/`, copied (with a local "Open in Colab" badge) so that
  MyST-NB renders and, in a full build, executes them (cached by jupyter-cache).
- `benchmarks/index.md`: the benchmark page, from the committed `benchmarks/results.json`.

Every docstring goes through `docstrings.convert` (equation blocks to LaTeX, see `housemath`).
Each transformation and optimizer in `tests/registry.py` also gets its state layout (built and
initialized here) and, where its own docstring has no equations, the equations of the blocks
its chain is made of.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import docstrings
import housemath
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
COLAB = "https://colab.research.google.com/github/gradtx/gradtx/blob/main/notebooks/"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "../_static/colab-badge.svg"
STATE_PARAMS_SHAPE = (2, 3)  # the params whose optimizer state each registry entry shows


# ---------------------------------------------------------------------------------------------------
# The public API, grouped


@dataclass
class Entry:
    name: str  # as the user writes it after `gradtx.` (tree's functions: `tree.add`)
    obj: Any
    module: str  # where it is defined
    kind: str  # function, class, data, module, alias
    line: int  # its place in the module's source
    alias_of: str = ""  # for `multi_transform = partition`: "partition"
    note: str = ""  # the comment beside an assignment in the source


@dataclass
class Page:
    module: str
    entries: list[Entry] = field(default_factory=list)
    order: int = 0

    @property
    def docname(self) -> str:
        return "api/" + self.module

    @property
    def title(self) -> str:
        return module_title(self.module)


def module_title(module: str) -> str:
    """The words of a module's docstring before its first colon or full stop (else its name).

    A head that ends in a citation, "Adam with decoupled weight decay (Loshchilov & Hutter, 2019)",
    is titled without it where the whole would be too long for the sidebar. A head that starts
    with a name (`inject_hyperparams`, `torch.optim's`) keeps the name's case."""
    doc = (sys.modules[module].__doc__ or module).strip().splitlines()[0] + " "
    head = re.split(r"[:.]\s", doc, maxsplit=1)[0].strip()
    if len(head) >= 60:
        head = re.sub(r"\s*\([^()]*\)$", "", head)
    if not head or len(head) >= 60:
        return module
    first_word = head.split(" ", 1)[0]
    return head if re.search(r"[_.]\w", first_word) else head[:1].upper() + head[1:]


def module_intro(module: str) -> list[str]:
    """A module's docstring without the words its title took, as docstring lines."""
    lines = docstrings.docstring_lines(sys.modules[module].__doc__)
    if not lines:
        return []
    title = module_title(module)
    first, rest = lines[0], lines[1:]
    if title == module or not first.lower().startswith(title.lower()):
        return lines
    after = first[len(title) :].strip()
    if after.startswith("("):  # the title left out a citation: the intro starts with the whole line
        return lines
    after = after.lstrip(":. ").strip()
    return ([after[:1].upper() + after[1:]] if after else []) + rest


def imported_from(package: types.ModuleType) -> dict[str, str]:
    """name -> module, from the `from gradtx.x import name` lines of gradtx/__init__.py."""
    source = inspect.getsource(package)
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                found[alias.asname or alias.name] = node.module
    return found


def assignment(module: str, name: str) -> tuple[int, str, str]:
    """(line, right-hand side, trailing comment) of `name = ...` in a module's source."""
    source = inspect.getsource(sys.modules[module])
    lines = source.splitlines()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            text = lines[node.lineno - 1]
            code, _, comment = text.partition("#")
            return node.lineno, code.split("=", 1)[1].strip(), comment.strip()
    return 10**6, "", ""


def source_line(obj: Any) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 10**6


def entry(name: str, obj: Any, home: str, public: dict[str, Any]) -> Entry:
    if inspect.ismodule(obj):
        return Entry(name, obj, obj.__name__, "module", 0)
    module = getattr(obj, "__module__", None) or ""
    defined_name = getattr(obj, "__name__", name)
    if module.startswith("gradtx") and module in sys.modules:
        if defined_name != name and public.get(defined_name) is obj:  # multi_transform = partition
            line, _, note = assignment(module, name)
            return Entry(name, obj, module, "alias", line, alias_of=defined_name, note=note)
        kind = "class" if inspect.isclass(obj) else "function"
        return Entry(name, obj, module, kind, source_line(obj))
    # A type alias (`Params = PyTree`): its module is typing's; the import in __init__ says where it is.
    line, _, note = assignment(home, name)
    return Entry(name, obj, home, "data", line, note=note)


def module_members(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__
        ]
    return list(names)


def collect(gradtx: types.ModuleType) -> list[Page]:
    """The API pages: one per module holding public names, in the order `__all__` first names them."""
    homes = imported_from(gradtx)
    public = {n: getattr(gradtx, n) for n in gradtx.__all__}
    pages: dict[str, Page] = {}

    def page(module: str) -> Page:
        if module not in pages:
            pages[module] = Page(module, order=len(pages))
        return pages[module]

    for name, obj in public.items():
        e = entry(name, obj, homes.get(name, gradtx.__name__), public)
        if e.kind == "module":
            documented = {id(v) for v in public.values()}
            members = [m for m in module_members(obj) if id(getattr(obj, m)) not in documented]
            p = page(obj.__name__)
            for m in members:
                value = getattr(obj, m)
                if inspect.ismodule(value) and value.__name__.startswith(obj.__name__ + "."):
                    # a subpackage's module (gradtx.presets.torch): a page of its own, with its members
                    sub = page(value.__name__)
                    for n in module_members(value):
                        sub.entries.append(entry(f"{name}.{m}.{n}", getattr(value, n), value.__name__, {}))
                    continue
                child = entry(f"{name}.{m}", value, obj.__name__, {})
                p.entries.append(child)
            continue
        page(e.module).entries.append(e)
    # Public top-level modules that no name lives in (the testing kit), documented whole.
    for info in pkgutil.iter_modules(gradtx.__path__):
        module = f"{gradtx.__name__}.{info.name}"
        if info.name.startswith("_") or any(p == module or p.startswith(module + ".") for p in pages):
            continue
        mod = importlib.import_module(module)
        p = page(module)
        for m in module_members(mod):
            p.entries.append(entry(f"{info.name}.{m}", getattr(mod, m), module, {}))
    for p in pages.values():
        # by kind, then those defined in the page's own module first (presets.torch's presets, then its
        # state conversions), then in source order
        p.entries.sort(key=lambda e: (e.kind in ("class", "data"), e.module != p.module, e.line))
    return sorted(pages.values(), key=lambda p: p.order)


def section_of(module: str) -> str:
    """The package a module's page is grouped under: `gradtx.transforms` for its families."""
    parts = module.split(".")
    return ".".join(parts[:2])


# ---------------------------------------------------------------------------------------------------
# What the registry adds to an entry: its state layout and the equations of its chain


class Shape:
    def __init__(self, leaf: Any):
        self.text = f"{leaf.dtype}[{', '.join(map(str, leaf.shape))}]"

    def __repr__(self) -> str:
        return self.text


def registry_extras(gradtx: types.ModuleType) -> dict[str, dict[str, str]]:
    """name -> {"repr": the built object, "state": its state for a (2, 3) float32 param}."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import jax
    import jax.numpy as jnp

    from tests import registry

    extras: dict[str, dict[str, str]] = {}
    params = {"w": jnp.zeros(STATE_PARAMS_SHAPE, jnp.float32)}
    for case in registry.TRANSFORMATION_CASES:
        if case.name in extras:
            continue  # the first case of a name is its plain use
        tx = case.build()
        state = tx.init(params)
        extras[case.name] = {
            "repr": repr(tx),
            "state": repr(jax.tree.map(Shape, state)),
        }
    for case in registry.SCHEDULES:
        extras.setdefault(case.name, {"repr": repr(case.build())})
    return extras


def chain_members(built: str, public: set[str]) -> list[str]:
    """The public builders named in an object's repr, in order, each once."""
    seen: list[str] = []
    for name in re.findall(r"([A-Za-z_]\w*)\(", built):
        if name in public and name not in seen:
            seen.append(name)
    return seen


# ---------------------------------------------------------------------------------------------------
# Writing the pages


def write_if_changed(path: Path, text: str, written: set[Path]) -> None:
    written.add(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return  # keeps its mtime, so Sphinx does not read it again
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # two builds at once (pytest -n) never
    partial.write_text(text, encoding="utf-8")  # read half a file: the new one replaces the old in one step
    os.replace(partial, path)


def remove_stale(folder: Path, written: set[Path], pattern: str) -> None:
    for path in folder.glob(pattern):
        if path not in written:
            path.unlink()


def rst_heading(text: str, char: str) -> list[str]:
    return [text, char * len(text), ""]


def one_line(obj: Any) -> str:
    """The first paragraph of a docstring (usually its one sentence), on one line."""
    doc = docstrings.docstring_lines(getattr(obj, "__doc__", None))
    first: list[str] = []
    for line in doc:
        if not line.strip() or line.startswith(" "):
            break
        first.append(line.strip())
    return docstrings.escape_prose(" ".join(first))


def entry_rst(e: Entry) -> list[str]:
    full = "gradtx." + e.name
    out = [f".. _api-{e.name}:", ""]
    out += rst_heading(e.name.rsplit(".", 1)[-1] if "." not in e.name else e.name, "-")
    if e.kind == "function":
        out += [f".. autofunction:: {full}", ""]
    elif e.kind == "class":
        fields = getattr(e.obj, "_fields", None)
        if fields is not None:
            out += [f".. autoclass:: {full}", ""]
        else:
            out += [f".. autoclass:: {full}", "   :members:", ""]
    elif e.kind == "alias":
        role = "class" if inspect.isclass(e.obj) else "func"
        out += [f".. py:data:: {e.name}", "   :module: gradtx", "", f"   Another name for :{role}:`gradtx.{e.alias_of}`"
                + (f" ({docstrings.escape_prose(e.note)})." if e.note else "."), ""]  # fmt: skip
    elif e.kind == "data":
        _, value, _ = assignment(e.module, e.name.rsplit(".", 1)[-1])
        out += [f".. py:data:: {e.name}", "   :module: gradtx", f"   :value: {value}", ""]
        if e.note:
            out += ["   " + docstrings.escape_prose(e.note[:1].upper() + e.note[1:]) + ".", ""]
    return out


def page_rst(p: Page, section_pages: dict[str, list[Page]], taken: set[str]) -> str:
    out = [f".. This page is generated by docs/_ext/gradtx_docs.py from {p.module}; edit the docstrings.", ""]
    out += rst_heading(p.title, "=")
    if p.module not in taken:  # gradtx.describe is a function: its module's page is no second target
        out += [f".. py:module:: {p.module}", ""]
    out += [f".. gradtx-moduledoc:: {p.module}", ""]
    if p.module in section_pages:  # a package's own page: its families
        out += [".. toctree::", "   :maxdepth: 1", ""]
        out += [f"   {child.module}" for child in section_pages[p.module]]
        out.append("")
    if p.entries:
        out += ["", ".. currentmodule:: gradtx", ""]
        for e in p.entries:
            out += entry_rst(e)
    return "\n".join(out) + "\n"


def index_rst(pages: list[Page]) -> str:
    out = [".. This page is generated by docs/_ext/gradtx_docs.py from gradtx.__all__.", ""]
    out += rst_heading("API reference", "=")
    out += [
        "Every public name of gradtx, on the page of the module it is defined in. Each entry gives the",
        "signature with its defaults, the update rule as equations, the state it keeps (for one float32",
        "parameter of shape (2, 3)), a reference and a runnable example.",
        "",
        ".. toctree::",
        "   :hidden:",
        "",
    ]
    sections: dict[str, list[Page]] = {}
    for p in pages:
        sections.setdefault(section_of(p.module), []).append(p)
    for section, members in sections.items():
        if section != members[0].module or len(members) > 1:
            out.append(f"   {section}")
        else:
            out.append(f"   {members[0].module}")
    out.append("")
    for section, members in sections.items():
        top = section if section in sys.modules else members[0].module
        out += rst_heading(module_title(top), "-")
        for p in members:
            if p.module != top:
                out += [f"**{p.title}** (:doc:`{p.module}`)", ""]
            if not p.entries:  # a package's page whose names all live in its modules
                continue
            out += [".. list-table::", "   :widths: 30 70", ""]
            for e in p.entries:
                summary = one_line(e.obj) if e.kind not in ("alias", "data") else docstrings.escape_prose(e.note)
                if e.kind == "alias":
                    summary = f"another name for ``{e.alias_of}``"
                out += [f"   * - :ref:`{e.name} <api-{e.name}>`", f"     - {summary or ' '}"]
            out.append("")
    return "\n".join(out) + "\n"


def write_api(app: Sphinx) -> None:
    import gradtx

    pages = collect(gradtx)
    folder = DOCS / "api"
    written: set[Path] = set()
    by_module = {p.module: p for p in pages}
    sections: dict[str, list[Page]] = {}
    for p in pages:
        sec = section_of(p.module)
        if sec != p.module:
            sections.setdefault(sec, []).append(p)
    for sec in sections:  # a package holding family modules gets a page of its own
        if sec not in by_module:
            importlib.import_module(sec)
            by_module[sec] = Page(sec, order=-1)
    # Full names of public functions and classes, which a module of the same name must not shadow.
    taken = {f"gradtx.{n}" for n in gradtx.__all__ if not inspect.ismodule(getattr(gradtx, n))}
    for p in by_module.values():
        write_if_changed(folder / f"{p.module}.rst", page_rst(p, sections, taken), written)
    write_if_changed(folder / "index.rst", index_rst(pages), written)
    remove_stale(folder, written, "*.rst")


# ---------------------------------------------------------------------------------------------------
# Notebooks


def local_badge(nb: dict, name: str) -> dict:
    """The Colab badge with an image served by the site itself (and added where it is missing)."""
    link = f"[![Open In Colab]({LOCAL_BADGE})]({COLAB}{name})"
    cells = nb["cells"]
    found = False
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        src = "".join(cell["source"])
        if COLAB_BADGE in src:
            cell["source"] = src.replace(COLAB_BADGE, LOCAL_BADGE)
            found = True
    if not found:
        first = cells[0] if cells and cells[0]["cell_type"] == "markdown" else None
        if first is not None:
            title, _, rest = "".join(first["source"]).partition("\n")
            first["source"] = title + "\n\n" + link + "\n" + rest
        else:
            cells.insert(0, {"cell_type": "markdown", "metadata": {}, "source": link})
    return nb


def notebook_title_and_summary(nb: dict) -> tuple[str, str]:
    src = "".join(nb["cells"][0]["source"]) if nb["cells"] else ""
    title = next((line.lstrip("# ").strip() for line in src.splitlines() if line.startswith("#")), "")
    paragraphs = [p.strip() for p in src.split("\n\n") if p.strip() and not p.startswith(("#", "[!["))]
    return title, (paragraphs[0] if paragraphs else "")


def write_notebooks(app: Sphinx) -> None:
    folder = DOCS / "notebooks"
    written: set[Path] = set()
    rows = []
    for src in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = local_badge(json.loads(src.read_text(encoding="utf-8")), src.name)
        write_if_changed(folder / src.name, json.dumps(nb, indent=1, ensure_ascii=False) + "\n", written)
        title, summary = notebook_title_and_summary(nb)
        rows.append((src.stem, title, summary))
    lines = [
        "% This page is generated by docs/_ext/gradtx_docs.py from notebooks/.",
        "",
        "# Notebooks",
        "",
        "Each notebook runs top to bottom on a CPU in well under a minute, and the test suite runs every",
        "one (`tests/test_notebooks.py`). Here they are shown as they ran when this site was built, plots",
        "included; the badge on each opens it in Colab.",
        "",
        "```{toctree}",
        ":hidden:",
        "",
        *[stem for stem, _, _ in rows],
        "```",
        "",
    ]
    for stem, title, summary in rows:
        lines += [f"[**{title}**]({stem}.ipynb)", f": {summary}", ""]
    write_if_changed(folder / "index.md", "\n".join(lines), written)
    remove_stale(folder, written, "*.ipynb")


# ---------------------------------------------------------------------------------------------------
# Docstrings


def process_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    converted = docstrings.convert(list(lines), docstrings.names_of(obj))
    extras = registry_extra(app, name)
    lines[:] = converted.lines + extra_lines(app, name, obj, converted, extras)


def registry_extra(app: Sphinx, name: str) -> dict[str, str]:
    env = app.env
    if not hasattr(env, "gradtx_extras"):
        import gradtx

        env.gradtx_extras = registry_extras(gradtx)  # type: ignore[attr-defined]
    short = name.removeprefix("gradtx.")
    return env.gradtx_extras.get(short, {})  # type: ignore[attr-defined]


def extra_lines(app: Sphinx, name: str, obj: Any, converted: docstrings.Converted, extras: dict[str, str]) -> list[str]:
    import gradtx

    out: list[str] = []
    if not extras or not name.startswith("gradtx.") or name.count(".") != 1:
        return out
    public = set(gradtx.__all__)
    own = name.removeprefix("gradtx.")
    if converted.blocks == 0 and "state" in extras:
        members = [m for m in chain_members(extras["repr"], public) if m != own]
        for member in members:
            block = equation_block_of(getattr(gradtx, member))
            if block is None:
                continue
            out += ["", ".. rubric:: Update rule", "", f"Of :func:`~gradtx.{member}`, in this chain:", ""]
            out += block
    if "state" in extras:
        out += ["", ".. rubric:: Built and initialized", "",
                f"With the arguments of ``tests/registry.py``, for one float32 parameter of shape"
                f" {STATE_PARAMS_SHAPE}:", "", ".. code-block:: python", ""]  # fmt: skip
        out += ["   " + line for line in wrap_repr(f"{own}(...) = " + extras["repr"])]
        out += ["   " + line for line in wrap_repr("state = " + extras["state"])]
        out.append("")
    return out


def equation_block_of(obj: Any) -> list[str] | None:
    lines = docstrings.docstring_lines(getattr(obj, "__doc__", None))
    for seg in housemath.split_docstring(lines):
        if seg.kind == "math":
            rendered = housemath.render_block(seg.lines, docstrings.names_of(obj))
            return docstrings.math_directive(rendered.latex)
    return None


def wrap_repr(text: str, width: int = 88) -> list[str]:
    """A long repr broken after commas at bracket depth 1, so it fits a phone's screen."""
    if len(text) <= width:
        return [text]
    lines, current, depth = [], "", 0
    for ch in text:
        current += ch
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth <= 2 and len(current) > width // 2:
            lines.append(current)
            current = "    "
    lines.append(current)
    return [line.rstrip() for line in lines]


class ModuleDoc(SphinxDirective):
    """`.. gradtx-moduledoc:: gradtx.x`: a module's docstring, less its title line, as the page intro."""

    required_arguments = 1
    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {"full": directives.flag}

    def run(self) -> list[nodes.Node]:
        module = importlib.import_module(self.arguments[0])
        converted = docstrings.convert(module_intro(module.__name__), docstrings.names_of(module))
        container = nodes.container(classes=["gradtx-module-intro"])
        self.state.nested_parse(StringList(converted.lines, source=f"docstring of {module.__name__}"), 0, container)
        return [container]


# ---------------------------------------------------------------------------------------------------
# Numbers the guides quote, computed when the site is built


def counts() -> dict[str, int]:
    """What `{gradtx-count}` can insert: sizes of the registry, the API and the reference tests."""
    import gradtx

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import registry

    cases = registry.TRANSFORMATION_CASES + registry.SCHEDULES + registry.OWN_PARAMS
    torch_cases = 0
    torch_tests = ROOT / "tests" / "test_optimizers_torch.py"
    if torch_tests.exists():  # the (id, gradtx, torch) tuples of its CASES list, read without importing torch
        for node in ast.parse(torch_tests.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CASES" for t in node.targets):
                torch_cases = len(getattr(node.value, "elts", []))
    return {
        "public-names": len(gradtx.__all__),
        "registry-cases": len(cases),
        "registry-names": len({c.name for c in cases}),
        "registry-transformations": len(registry.TRANSFORMATION_CASES),
        "registry-schedules": len(registry.SCHEDULES),
        "optax-cases": sum(c.optax for c in registry.TRANSFORMATION_CASES + registry.SCHEDULES),
        "torch-cases": torch_cases,
        "notebooks": len(list((ROOT / "notebooks").glob("*.ipynb"))),
        "test-files": len(list((ROOT / "tests").rglob("test_*.py"))),
    }


def count_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    if not hasattr(env, "gradtx_counts"):
        env.gradtx_counts = counts()
    value = env.gradtx_counts.get(text)
    if value is None:
        msg = inliner.reporter.error(f"gradtx-count: unknown count {text!r}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.Text(f"{value:,}")], []


def table_node(header: list[str], rows: list[list[str]], code_columns: int = 0) -> nodes.table:
    """A docutils table (Markdown and reStructuredText pages alike); the first columns as code."""
    table = nodes.table(classes=["gradtx-benchmarks"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)

    def row(cells: list[str], head: bool) -> nodes.row:
        out = nodes.row()
        for k, cell in enumerate(cells):
            inline = nodes.literal(text=cell) if (k < code_columns and not head) else nodes.Text(cell)
            out += nodes.entry("", nodes.paragraph("", "", inline))
        return out

    thead = nodes.thead()
    thead += row(header, True)
    tbody = nodes.tbody()
    for cells in rows:
        tbody += row(cells, False)
    group += thead
    group += tbody
    return table


class BenchmarkTable(SphinxDirective):
    """A table of rows of the committed benchmark snapshot, for the guides.

    ```{gradtx-benchmarks}
    :shapes: 1000x64x64
    :optimizers: adam
    :impls: gradtx, gradtx packed, optax, torch fused
    :columns: median_s, ratio_to_optax, compile_s
    ```
    """

    option_spec: ClassVar[dict[str, Any]] = {
        "shapes": directives.unchanged,
        "optimizers": directives.unchanged,
        "impls": directives.unchanged,
        "columns": directives.unchanged,
    }
    HEADERS: ClassVar[dict[str, tuple[str, str, float]]] = {
        "median_s": ("median ms", ".3f", 1e3), "ratio_to_optax": ("x optax", ".2f", 1.0),
        "ratio_to_floor": ("x floor", ".2f", 1.0), "compile_s": ("compile s", ".2f", 1.0),
        "first_step_s": ("1st step s", ".2f", 1.0), "state_bytes_per_param": ("state B/param", ".1f", 1.0),
        "peak_rss_extra_bytes": ("peak +MB", ".1f", 1e-6), "gbps": ("GB/s", ".1f", 1.0),
    }  # fmt: skip

    def run(self) -> list[nodes.Node]:
        snapshot = DOCS / "benchmarks" / "results.json"
        self.env.note_dependency(str(snapshot))
        if not snapshot.exists():
            return [nodes.paragraph(text="(No benchmark snapshot yet: see docs/benchmarks/page.py.)")]
        rows = json.loads(snapshot.read_text(encoding="utf-8"))["results"]

        def wanted(key: str) -> list[str] | None:
            value = self.options.get(key)
            return [v.strip() for v in value.split(",")] if value else None

        shapes, optimizers, impls = wanted("shapes"), wanted("optimizers"), wanted("impls")
        columns = wanted("columns") or ["median_s", "ratio_to_optax", "ratio_to_floor"]
        chosen = [r for r in rows if (shapes is None or r["shape"] in shapes)
                  and (optimizers is None or r["optimizer"] in optimizers)
                  and (impls is None or r["impl"] in impls) and r["status"] == "ok"]  # fmt: skip
        if impls:
            chosen.sort(key=lambda r: (r["shape"], r["optimizer"], impls.index(r["impl"])))
        if not chosen:
            raise self.error("gradtx-benchmarks: no row of the snapshot matches")
        header = ["shape", "optimizer", "impl", *(self.HEADERS[c][0] for c in columns)]
        body = []
        for r in chosen:
            cells: list[str] = []
            for c in columns:
                _, spec, scale = self.HEADERS[c]
                value = r.get(c)
                cells.append("-" if value is None else format(value * scale, spec))
            body.append([r["shape"], r["optimizer"], r["impl"], *cells])
        return [table_node(header, body, code_columns=1)]


# ---------------------------------------------------------------------------------------------------


def generate(app: Sphinx) -> None:
    write_api(app)
    write_notebooks(app)
    sys.path.insert(0, str(DOCS / "benchmarks"))
    import page as benchmarks_page

    benchmarks_page.write(DOCS / "benchmarks" / "results.json", DOCS / "benchmarks", write_if_changed)


def fingerprint() -> str:
    """Rebuild every page when the package or this extension changes (Sphinx tracks neither)."""
    h = hashlib.sha256()
    for path in sorted(
        [*(ROOT / "gradtx").rglob("*.py"), *(DOCS / "_ext").glob("*.py"), ROOT / "tests" / "registry.py"]
    ):
        h.update(path.read_bytes())
    return h.hexdigest()


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", process_docstring)
    app.add_directive("gradtx-moduledoc", ModuleDoc)
    app.add_directive("gradtx-benchmarks", BenchmarkTable)
    app.add_role("gradtx-count", count_role)
    app.add_config_value("gradtx_fingerprint", fingerprint(), "env")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
