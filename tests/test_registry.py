"""The registry covers exactly the public API, and the public API is exactly `gradtx.__all__`."""

import types

import gradtx
from tests.registry import EXTRA_ARGS, NOT_BUILDERS, OPTIMIZERS, OWN_PARAMS, PER_EXAMPLE, SCHEDULES, TRANSFORMS


def preset_builders() -> set[str]:
    """Every builder of gradtx.presets' modules, named as the registry names them ("presets.torch.Adam")."""
    return {
        f"presets.{module}.{name}"
        for module in gradtx.presets.__all__
        for name in getattr(gradtx.presets, module).__all__
        if not name.startswith("state_")
    }


def test_registry_equals_public_api():
    covered = {case.name for case in TRANSFORMS + OPTIMIZERS + SCHEDULES + OWN_PARAMS + EXTRA_ARGS + PER_EXAMPLE}
    # The presets are chains of public blocks: a representative case for each chain gradtx's own
    # optimizers do not build (tests/test_presets_*.py hold every preset to its framework).
    presets = {name for name in covered if name.startswith("presets.")}
    assert presets <= preset_builders(), "registry cases of presets that gradtx.presets does not define"
    assert {name.split(".")[1] for name in presets} == set(gradtx.presets.__all__)
    covered -= presets
    public = set(gradtx.__all__)
    assert not covered & NOT_BUILDERS
    assert covered - public == set(), "registry names that gradtx does not export"
    assert public - covered - NOT_BUILDERS == set(), "public builders missing from the registry"


def test_all_lists_every_public_name():
    names = {n for n in vars(gradtx) if not n.startswith("_")}
    modules = {n for n in names if isinstance(getattr(gradtx, n), types.ModuleType)}
    assert set(gradtx.__all__) - names == set(), "__all__ names that do not exist"
    # Submodules (base, combine, transforms, ...) are reachable but only tree and schedules are API.
    assert names - modules - set(gradtx.__all__) == set(), "public names missing from __all__"
    assert len(gradtx.__all__) == len(set(gradtx.__all__))
