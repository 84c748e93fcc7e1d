"""The registry covers exactly the public API, and the public API is exactly `gradtx.__all__`."""

import types

import gradtx
from tests.registry import EXTRA_ARGS, NOT_BUILDERS, OPTIMIZERS, OWN_PARAMS, PER_EXAMPLE, SCHEDULES, TRANSFORMS


def test_registry_equals_public_api():
    covered = {case.name for case in TRANSFORMS + OPTIMIZERS + SCHEDULES + OWN_PARAMS + EXTRA_ARGS + PER_EXAMPLE}
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
