"""The documentation site: its equations, its API coverage, its fast build and its guides' code.

- Every equation block of every docstring in the package translates to LaTeX (docs/_ext/housemath.py)
  that MathJax's own parser accepts (run in node, where node is installed), and the rows it could
  only set as text are exactly those docs/README.md lists under "notation to fix".
- The translator on the house notation, against LaTeX written here by hand.
- The site builds with warnings as errors and without executing the notebooks (the fast build, once:
  one test makes every check on it), every name of `gradtx.__all__` has an entry in the built
  inventory, the equations, states and examples reach the HTML, the guides' benchmark tables are
  tables, each notebook page carries a Colab badge, and nothing is loaded from the network.
- The API pages follow `obj.__module__` and `__all__`: a moved entry moves, a new one appears.
- Every ```python block of the guides runs, in one fresh interpreter per page, and prints what its
  `# -> ` lines show (the mechanism tests/test_examples.py uses for the README).
"""

from __future__ import annotations

import html as htmllib
import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gradtx
from tests.test_examples import run_python

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import docstrings  # noqa: E402
import housemath  # noqa: E402

# ---------------------------------------------------------------------------------------------------
# Every docstring's equation blocks


def package_docstrings() -> list[tuple[str, object, str]]:
    """(where, object, docstring) for the package's modules and everything defined in them."""
    found: list[tuple[str, object, str]] = []
    seen: set[int] = set()
    modules = [gradtx] + [importlib.import_module(m.name) for m in pkgutil.walk_packages(gradtx.__path__, "gradtx.")]
    for module in modules:
        found.append((module.__name__, module, module.__doc__ or ""))
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__ or id(obj) in seen:
                continue
            seen.add(id(obj))
            if getattr(obj, "__doc__", None):
                found.append((f"{module.__name__}.{name}", obj, obj.__doc__))
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and member.__doc__:
                        found.append((f"{module.__name__}.{name}.{attr}", member, member.__doc__))
    return found


def equation_blocks() -> list[tuple[str, housemath.Rendered]]:
    blocks = []
    for where, obj, doc in package_docstrings():
        for seg in housemath.split_docstring(docstrings.docstring_lines(doc)):
            if seg.kind == "math":
                blocks.append((where, housemath.render_block(seg.lines, docstrings.names_of(obj))))
    return blocks


def notation_to_fix() -> set[tuple[str, str]]:
    """The (object, row) pairs docs/README.md lists under "notation to fix"."""
    text = (DOCS / "README.md").read_text(encoding="utf-8")
    section = text.split("<!-- notation-to-fix", 1)[1].split("<!-- end notation-to-fix -->", 1)[0]
    return set(re.findall(r"^- `([\w.]+)`: `(.+?)`$", section, re.MULTILINE))


def mathjax_dir() -> Path | None:
    try:
        package = importlib.import_module("sphinx-mathjax-offline")
    except ImportError:
        return None
    path = Path(str(package.__file__)).parent / "static" / "mathjax"
    return path if (path / "startup.js").exists() else None


@pytest.fixture(scope="module")
def blocks() -> list[tuple[str, housemath.Rendered]]:
    return equation_blocks()


def test_every_equation_block_translates(blocks):
    assert len(blocks) > 40, "the docstrings' equation blocks were not found"
    errors = {where: housemath.latex_errors(r.latex) for where, r in blocks if housemath.latex_errors(r.latex)}
    assert not errors, errors
    cells = [(where, body) for where, r in blocks for _, body, _, _ in r.table]
    assert cells, "no labelled block was found"
    shown = [(where, tex) for where, body in cells for tex in docstrings.shown_math(body.strip())]  # as on the site
    assert [(where, housemath.latex_errors(tex)) for where, tex in shown if housemath.latex_errors(tex)] == []
    found = {(where, row) for where, r in blocks for row in r.problems}
    listed = notation_to_fix()
    assert found - listed == set(), "rows whose math stayed text: fix the notation or list them in docs/README.md"
    assert listed - found == set(), "docs/README.md lists rows under 'notation to fix' that now translate"


@pytest.mark.skipif(shutil.which("node") is None or mathjax_dir() is None, reason="needs node and MathJax")
def test_mathjax_parses_every_equation_block(blocks):
    # Each block as one environment, and the cells of the labelled ones as the site shows them.
    shown = [(where, r.latex) for where, r in blocks]
    shown += [(where, tex) for where, r in blocks for _, body, _, _ in r.table if body.strip()
              for tex in docstrings.shown_math(body.strip())]  # fmt: skip
    latex = [tex for _, tex in shown]
    bad = ["\\frac{a}{", "\\nosuchmacro x"]  # the check must be able to fail
    result = subprocess.run(
        ["node", str(DOCS / "_ext" / "mathjax_check.js"), str(mathjax_dir())],
        input=json.dumps(latex + bad), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)
    assert [i for i, _ in errors if i >= len(latex)] == [len(latex), len(latex) + 1], errors
    assert [(shown[i][0], message) for i, message in errors if i < len(latex)] == []


@pytest.mark.parametrize(
    "src, tex",
    [
        ("m <- b1 m + (1 - b1) g", r"m \leftarrow \beta_{1}\, m + (1 - \beta_{1}) g"),
        ("u  = m^ / (sqrt(v^ + eps_root) + eps)",
         r"u = \frac{\hat{m}}{\sqrt{\hat{v} + \epsilon_{\mathrm{root}}} + \epsilon}"),
        ("value(k) = I ((1 - alpha) ((1 + cos(pi t / T)) / 2)^p + alpha)",
         r"\mathrm{value}(k) = I \left((1 - \alpha) \left(\frac{1 + \cos\left(\frac{\pi\, t}{T}\right)}{2}\right)^{p}"
         r" + \alpha\right)"),
        ("t <- mu t + g", r"t \leftarrow \mu\, t + g"),
        ("r = c ||w|| / (||g|| + eps)", r"r = \frac{c \|w\|}{\|g\| + \epsilon}"),
        ("u_k = (1 + mu_{k+1}) v_k", r"u_{k} = (1 + \mu_{k + 1}) v_{k}"),
        ("m^ = m / (1 - b1^t)", r"\hat{m} = \frac{m}{1 - \beta_{1}^{t}}"),
        ("nu <- max(b2 nu, |g| + eps)", r"\nu \leftarrow \max(\beta_{2}\, \nu,\ |g| + \epsilon)"),
        ("u = sign(c)", r"u = \operatorname{sign}(c)"),
        ("d_t = 1 - t^(-decay_rate)", r"d_{t} = 1 - t^{-\mathrm{decay\_rate}}"),
        ("t = floor(k / T)", r"t = \left\lfloor \frac{k}{T} \right\rfloor"),
        ("eps = 1e-8", r"\epsilon = 10^{-8}"),
        ("u = g  for k < W", r"u = g\qquad \text{for}\ k < W"),
        ("||g|| = sqrt(sum_i |g_i|^2)", r"\|g\| = \sqrt{\sum_{i}\, |g_{i}|^{2}}"),
        ("u = g / (sqrt(s^_{t-1}) + eps)", r"u = \frac{g}{\sqrt{\hat{s}_{t - 1}} + \epsilon}"),
        ("tau = max(f^ - f* + <d, x>, 0) / ||d||^2",
         r"\tau = \frac{\max(\hat{f} - f^{*} + \langle d,\ x \rangle,\ 0)}{\|d\|^{2}}"),
        ("u = g  where g != 0:  m <- b1 m", r"u = g\qquad \text{where}\ g \ne 0:\qquad m \leftarrow \beta_{1}\, m"),
    ],
)  # fmt: skip
def test_house_notation(src, tex):
    rendered = housemath.render_block(["    " + src])
    assert rendered.rows == [housemath.align_at_relation(tex)[0]], rendered.rows
    assert rendered.problems == []


def test_prose_and_code_stay_as_written():
    code = ["    step = gradtx.make_step(tx, loss_fn)   # jitted"]
    assert not housemath.is_equation_block(code)
    prose = housemath.render_block(["    u = g  where mask is True"])
    assert r"\text{where}\ \text{mask is True}" in prose.latex and prose.problems == []
    broken = housemath.render_block(["    ||g|| = sqrt(sum over all leaves of g^2)"])
    assert broken.problems  # math written in words is reported, not hidden
    assert housemath.latex_errors(r"m:\\qquad u") != []  # a row break glued to a word is caught


def test_docstring_markup_is_escaped():
    lines = ["Takes `**extra_args` and **extra_args; |g| is a norm, x_ a name, *raw* stays emphasis."]
    assert docstrings.convert(lines).lines == [
        r"Takes `**extra_args` and \*\*extra_args; \|g\| is a norm, x\_ a name, *raw* stays emphasis."
    ]


# ---------------------------------------------------------------------------------------------------
# The fast build of the site


def public_entries() -> set[str]:
    """`gradtx.<name>` for every name of __all__, and `gradtx.<module>.<f>` for the API modules' members."""
    names = {f"gradtx.{n}" for n in gradtx.__all__}
    for n in gradtx.__all__:
        obj = getattr(gradtx, n)
        if inspect.ismodule(obj):
            members = getattr(obj, "__all__", None) or [
                m for m, v in vars(obj).items()
                if not m.startswith("_") and callable(v) and getattr(v, "__module__", None) == obj.__name__
            ]  # fmt: skip
            names |= {f"gradtx.{n}.{m}" for m in members if f"gradtx.{m}" not in names}
    return names


def undocumented(wanted: set[str], inventory: dict[str, set[str]]) -> set[str]:
    documented = set().union(*(v for k, v in inventory.items() if k.startswith("py:")))
    return wanted - documented


def build_site(out: Path) -> Path:
    """The fast build, into `out`: warnings are errors, the notebooks are not executed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-D", "nb_execution_mode=off",
         "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"the fast docs build failed:\n{result.stderr[-6000:]}"
    return out / "html"


@pytest.mark.slow
def test_the_site_builds_and_documents_everything(tmp_path):
    """One build (a second one under pytest-xdist would double the time), then every check on it."""
    if sys.version_info < (3, 11):
        pytest.skip("the docs extra pins Sphinx 9, which needs Python 3.11")
    site = build_site(tmp_path)
    check_every_public_name_has_an_entry(site)
    check_api_pages_render_equations_state_and_examples(site)
    check_guides_quote_the_benchmark_snapshot_as_tables(site)
    check_notebooks_have_colab_badges_and_the_site_is_offline(site)


def read_inventory(path: Path) -> dict[str, set[str]]:
    from sphinx.util.inventory import InventoryFile

    with path.open("rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    data = inventory.data if hasattr(inventory, "data") else inventory  # Sphinx 8.2+ wraps the dict
    return {kind: set(entries) for kind, entries in data.items()}


def check_every_public_name_has_an_entry(site: Path) -> None:
    inventory = read_inventory(site / "objects.inv")
    wanted = public_entries()
    assert len(wanted) >= len(gradtx.__all__)
    assert undocumented(wanted, inventory) == set()
    # The check fails on a name left out of the site.
    some = "gradtx.adam"
    trimmed = {k: v - {some} for k, v in inventory.items()}
    assert undocumented(wanted, trimmed) == {some}


def check_api_pages_render_equations_state_and_examples(site: Path) -> None:
    adam_page = next(p for p in (site / "api").glob("*.html") if 'id="gradtx.scale_by_adam"' in p.read_text("utf-8"))
    html = adam_page.read_text("utf-8")
    assert r"\leftarrow \beta_{1}" in html and r"\hat{m}" in html  # the update rule, as LaTeX for MathJax
    assert "\\begin{split}" not in html  # shown as written, not re-wrapped by Sphinx
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", html))
    assert "state = ScaleByAdamState(count=int32[], mu={'w': float32[2, 3]}" in text  # its state, built
    assert ">>> gradtx.scale_by_adam(b2=0.99)" in text  # its runnable example
    optimizers = next(p for p in (site / "api").glob("*.html") if 'id="gradtx.adam"' in p.read_text("utf-8"))
    assert "Update rule" in optimizers.read_text("utf-8") and "in this chain:" in optimizers.read_text("utf-8")


def check_guides_quote_the_benchmark_snapshot_as_tables(site: Path) -> None:
    html = (site / "guides" / "fast_steps.html").read_text("utf-8")
    tables = re.findall(r"<table.*?</table>", html, re.DOTALL)
    quoted = [t for t in tables if "x optax" in t and "gradtx packed" in t]
    assert quoted, "the fast steps guide shows no benchmark table"
    assert "list-table" not in html  # a directive's table parsed as text would show its markup


def check_notebooks_have_colab_badges_and_the_site_is_offline(site: Path) -> None:
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for nb in notebooks:
        page = (site / "notebooks" / f"{nb.stem}.html").read_text("utf-8")
        assert f"colab.research.google.com/github/gradtx/gradtx/blob/main/notebooks/{nb.name}" in page
        assert "colab-badge.svg" in page and "assets/colab-badge.svg" not in page  # the badge image is local
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists()
    remote = re.compile(r"<(?:script|link|img)[^>]+(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)
    for path in site.rglob("*.html"):
        assert not remote.search(path.read_text("utf-8")), f"{path} loads something from the network"


# ---------------------------------------------------------------------------------------------------
# The guides' code


def guide_pages() -> list[Path]:
    skip = {"README.md"}
    generated = ("api", "notebooks", "_build", "benchmarks")
    return sorted(p for p in DOCS.rglob("*.md") if p.name not in skip and p.relative_to(DOCS).parts[0] not in generated)


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


# One interpreter runs every page (imports are most of the time), each page in its own namespace.
DRIVER = """
import contextlib, io, json, sys, traceback

results = {}
for name, code in json.load(open(sys.argv[1], encoding="utf-8")).items():
    out, error = io.StringIO(), None
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(code, name, "exec"), {"__name__": "__main__"})
        except BaseException:
            error = traceback.format_exc()
    results[name] = {"stdout": out.getvalue(), "error": error}
print(json.dumps(results))
"""


@pytest.mark.slow
def test_guides_code_runs_and_prints_what_it_shows(tmp_path):
    pages = {str(p.relative_to(DOCS)): "\n".join(python_blocks(p)) for p in guide_pages()}
    pages = {name: code for name, code in pages.items() if code}
    assert len(pages) >= 5, pages.keys()
    (tmp_path / "pages.json").write_text(json.dumps(pages), encoding="utf-8")
    driver = tmp_path / "run_pages.py"
    driver.write_text(DRIVER, encoding="utf-8")
    result = run_python(driver, str(tmp_path / "pages.json"))
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads(result.stdout.splitlines()[-1])
    failures = []
    for name, code in pages.items():
        run = results[name]
        if run["error"]:
            failures.append(f"{name} failed:\n{run['error'][-3000:]}")
            continue
        printed = run["stdout"].splitlines()
        missing = [line for line in re.findall(r"^# -> (.*)$", code, re.MULTILINE) if line not in printed]
        if missing:
            failures.append(f"{name} shows {missing}\nbut its code printed\n{run['stdout']}")
    assert not failures, "\n\n".join(failures)


def test_pages_follow_the_package_layout(monkeypatch):
    """Pages come from `obj.__module__` and `__all__` alone: a moved entry moves, a new one appears."""
    pytest.importorskip("sphinx")
    import gradtx_docs

    def placed() -> dict[str, str]:
        return {e.name: p.module for p in gradtx_docs.collect(gradtx) for e in p.entries}

    before = placed()
    modules = {n for n in gradtx.__all__ if inspect.ismodule(getattr(gradtx, n))}  # each has a page of its own
    assert set(gradtx.__all__) - modules <= set(before)  # every other name has an entry on a page
    assert before["scale_by_adam"] != before["sgd"]  # today: optimizers apart from their transformations

    def scale_by_novelty(b1: float = 0.9):  # a new entry, defined in an existing family's module
        """A new transformation: u <- b1 u."""

    home = gradtx.scale_by_adam.__module__
    monkeypatch.setattr(scale_by_novelty, "__module__", home)
    monkeypatch.setattr(gradtx, "scale_by_novelty", scale_by_novelty, raising=False)
    monkeypatch.setattr(gradtx, "__all__", [*gradtx.__all__, "scale_by_novelty"])
    monkeypatch.setattr(gradtx.adam, "__module__", home)  # the reshape: adam moves in with scale_by_adam
    after = placed()
    assert after["scale_by_novelty"] == home and after["adam"] == home
    assert after["sgd"] == before["sgd"]
