"""Sphinx configuration of gradtx's documentation site (see docs/README.md).

Full build, notebooks executed and cached:   python -m sphinx -W -b html docs docs/_build/html
Fast build, notebooks shown without outputs: add -D nb_execution_mode=off
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]  # gradtx from this checkout; the extension
# The notebooks' kernels import gradtx from this checkout too, and draw their figures inline.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

import gradtx  # noqa: E402

project = "gradtx"
author = "the gradtx authors"
copyright = "the gradtx authors"
release = version = gradtx.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 from a pinned package, copied into the site: no network
    "sphinx_copybutton",
    "gradtx_docs",
]

exclude_patterns = ["_build", "README.md", "jupyter_execute", "**.ipynb_checkpoints"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_css_files = ["gradtx.css"]

# --- the look: the theme of optax's and flax's sites
html_theme = "sphinx_book_theme"
html_title = f"gradtx {version}"
html_theme_options = {
    "repository_url": "https://github.com/gradtx/gradtx",
    "use_repository_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "home_page_in_toc": True,
}
html_show_sourcelink = False
pygments_style = "default"

# --- API pages (written by gradtx_docs at build time, from gradtx.__all__)
default_role = "py:obj"  # `name` in a docstring links to that name where it exists, code otherwise
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
# Signatures keep the names of gradtx's type aliases (ScalarOrSchedule, not the union it stands for):
# the public names whose objects are defined outside gradtx (typing's) and are not modules.
autodoc_type_aliases = {
    name: f"gradtx.{name}"
    for name in gradtx.__all__
    if not str(getattr(getattr(gradtx, name), "__module__", "")).startswith("gradtx")
    and not isinstance(getattr(gradtx, name), type(gradtx))
}
add_module_names = False
toc_object_entries = False  # the page's contents list each entry once, by its heading
python_display_short_literal_types = True
maximum_signature_line_length = 88

# --- math: MathJax 3 with text-mode escapes (\_ inside \text{}), which the equation blocks use
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {"packages": {"[+]": ["textmacros"]}},
}

# --- notebooks and Markdown pages (MyST, as optax, flax and jax)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True  # the notebooks write $$display math$$ inside paragraphs, as Jupyter allows
nb_execution_mode = "cache"  # the fast test build passes -D nb_execution_mode=off
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 300
nb_execution_raise_on_error = True  # a notebook that fails fails the build
nb_execution_in_temp = True
nb_merge_streams = True
suppress_warnings = ["mystnb.unknown_mime_type"]
