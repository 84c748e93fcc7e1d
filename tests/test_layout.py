"""The package layout stays as DESIGN.md section 5 and the folder READMEs describe it.

- every file of gradtx/ fits in one read (at most 500 lines);
- every folder of gradtx/ with more than three modules has a README.md, and the package
  docstring (gradtx/__init__.py) names every top-level module and folder;
- gradtx/transforms/README.md's table lists each family file with exactly the public names defined
  there, so a name added to a family (or a new family file) must be listed where readers look;
- an optimizer lives in the file of its transformation: each public name is defined in the module
  it is re-exported from (no module re-exports another's names under its own).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import gradtx

PACKAGE = Path(gradtx.__file__).parent
MAX_LINES = 500


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_file_fits_in_one_read(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines; split it by family or topic"


def test_folders_have_readmes_and_the_package_docstring_names_every_part():
    for folder in [PACKAGE, *(p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        if folder != PACKAGE and len(modules) > 3:
            assert (folder / "README.md").exists(), f"{folder.relative_to(PACKAGE)}/ has no README.md"
    doc = gradtx.__doc__ or ""
    for part in PACKAGE.iterdir():
        if part.name.startswith("_") or part.name == "py.typed" or part.suffix not in (".py", ""):
            continue
        name = part.name + "/" if part.is_dir() else part.name
        if part.is_dir() and not (part / "__init__.py").exists():
            continue
        assert name in doc, f"gradtx/__init__.py's docstring does not say what {name} holds"


def _family_names() -> dict[str, set[str]]:
    """File name -> the public names (gradtx.__all__, states left out) defined in that family file."""
    public = set(gradtx.__all__)
    out: dict[str, set[str]] = {}
    for info in pkgutil.iter_modules(gradtx.transforms.__path__):
        module = importlib.import_module(f"gradtx.transforms.{info.name}")
        out[f"{info.name}.py"] = {
            name
            for name, obj in vars(module).items()
            if name in public and not name.endswith("State") and getattr(obj, "__module__", None) == module.__name__
        }
    return out


def test_transforms_readme_lists_every_family_and_its_names():
    readme = (PACKAGE / "transforms" / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        match = re.match(r"\| `(\w+\.py)` \|.*\| (.*) \|$", line)
        if match:
            rows[match.group(1)] = set(re.findall(r"`(\w+)`", match.group(2)))
    families = _family_names()
    assert set(rows) == set(families), "transforms/README.md's table and the family files differ"
    for file, names in families.items():
        assert rows[file] == names, (
            f"transforms/README.md's row for {file} lists {sorted(rows[file])}, it defines {sorted(names)}"
        )


def test_each_public_name_is_defined_where_it_is_exported_from():
    for name in gradtx.__all__:
        obj = getattr(gradtx, name)
        module = getattr(obj, "__module__", None)
        if module is None or not module.startswith("gradtx") or isinstance(obj, type(gradtx)):
            continue
        source = importlib.import_module(module)
        assert getattr(source, name, None) is obj, f"{name} is exported from {module} but not defined there"
