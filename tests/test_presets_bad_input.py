"""Every preset, not only the registry's representatives, under tests/test_bad_input.py's fuzzer:
each numeric argument replaced by NaN, inf, -1, a string, a list, an array, None and the values just
outside its stated range gives an error that starts with the preset's name and names the argument,
or a chain that runs with finite updates."""

from __future__ import annotations

import inspect

import pytest

from gradtx.presets import keras as pk
from gradtx.presets import torch as pt
from tests.registry import Case
from tests.test_bad_input import BAD, _attempt, _just_outside, _numeric_arguments

PRESETS = [(f"presets.{m.__name__.rsplit('.', 1)[1]}.{n}", getattr(m, n)) for m in (pt, pk) for n in m.__all__]
PRESETS = [(name, fn) for name, fn in PRESETS if not name.rsplit(".", 1)[1].startswith("state_")]


@pytest.mark.parametrize(("name", "fn"), PRESETS, ids=[name for name, _ in PRESETS])
def test_every_bad_argument_of_every_preset_gets_a_clear_error_or_works(name, fn):
    case = Case(name, lambda m: fn(), optax=False)
    bound = inspect.signature(fn).bind()
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
    failures = []
    arguments = _numeric_arguments(fn, bound)
    assert arguments, name
    for argument in arguments:
        values = {k: v for k, v in BAD.items() if not (k == "None" and defaults[argument] is None)}
        messages = []
        for label, value in values.items():
            _, failure, message = _attempt(name, case, fn, (), {}, argument, value)
            messages.append(message)
            if failure:
                failures.append(f"[{label}] {failure}")
        ranges = [edges for edges in map(_just_outside, messages) if edges]
        for value in ranges[0] if ranges else []:
            _, failure, _ = _attempt(name, case, fn, (), {}, argument, value)
            if failure:
                failures.append(f"[just outside: {value!r}] {failure}")
    assert not failures, "\n".join(failures)
