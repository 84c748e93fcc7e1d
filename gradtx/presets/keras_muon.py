"""keras.optimizers.Muon as a gradtx chain (re-exported by presets.keras): Keras's arguments, defaults, numbers.

Keras 3's Muon updates each 2-D variable with Muon and every other one (and those whose path
matches `exclude_layers`, or contains "embedding" while `exclude_embeddings`) with its own Adam:

    Muon:  m <- mu m + g;  g~ = g + mu m (nesterov) or m;  p <- p - lr wd p - lr r sqrt(max(A, B)) NS(g~)
    Adam:  p <- p - lr_adam wd_adam p ... with lr_adam = lr adam_lr_ratio, epsilon eps-hat as keras.Adam

with r = rms_rate (None: no factor) and NS's input divided by ||g~||_F + 1e-7. In gradtx's blocks:

    chain([clip], partition({
        "muon": chain(scale_by_muon((muon_a, muon_b, muon_c), ns_steps, momentum, 1e-7, nesterov=nesterov,
                                    momentum_form="trace"),
                      scale_by_shape(consistent_rms=rms_rate), add_decayed_weights(weight_decay), lr),
        "adam": chain(scale_by_adam(adam_beta_1, adam_beta_2, epsilon, eps_hat=True), scale(adam_lr_ratio),
                      add_decayed_weights(adam_weight_decay), lr)}, muon_labels(exclude_layers, exclude_embeddings)))

Keras decays both kinds with the base learning rate (not lr_adam), as here. tests/test_presets_muon.py
holds it to Keras 3.15.1 on JAX in float64 (rtol 1e-10), with one difference made to Keras there:
keras.ops.norm returns float32 for float64 input (Keras 3.15.1), so Keras's ||g~||_F is rounded
to float32 (~1e-8 relative) where gradtx's is in the update's precision.
"""

from __future__ import annotations

import re
from typing import Any

import jax

from gradtx.base import Bound, GradientTransformation, Hyperparams, ScalarOrSchedule
from gradtx.checks import LEARNING_RATE, NONNEG, OR_NONE, REAL, UNIT, ArgumentTypeError, arguments_of, check, check_flag
from gradtx.combine import chain, partition
from gradtx.presets.keras_base import _around, _base, _is_on
from gradtx.transforms.adam import scale_by_adam
from gradtx.transforms.muon import scale_by_muon, scale_by_shape
from gradtx.transforms.regularization import add_decayed_weights
from gradtx.transforms.scaling import scale, scale_by_learning_rate


def _key(entry: Any) -> str:
    for attribute in ("key", "name", "idx"):
        if hasattr(entry, attribute):
            return str(getattr(entry, attribute))
    return str(entry)


def keras_path(path: Any) -> str:
    """A key path as Keras writes a variable's path: "dense/kernel"."""
    return "/".join(_key(entry) for entry in path)


def _label(hp: Hyperparams, path: Any, x: Any) -> str:
    where = keras_path(path)
    if len(getattr(x, "shape", ())) != 2:
        return "adam"
    if hp.exclude_embeddings and "embedding" in where.lower():
        return "adam"
    return "adam" if any(re.search(keyword, where) for keyword in hp.exclude_layers) else "muon"


def _labels(hp: Hyperparams, params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(lambda path, x: _label(hp, path, x), params)


def muon_labels(exclude_layers: tuple[str, ...] = (), exclude_embeddings: bool = True) -> Bound:
    """Keras Muon's choice, "muon" or "adam" for each leaf: "adam" for leaves that are not 2-D, whose
    path matches one of `exclude_layers` (re.search) or, with `exclude_embeddings`, contains "embedding"."""
    return Bound(_labels, Hyperparams("presets.keras.muon_labels", (), {
        "exclude_layers": tuple(exclude_layers), "exclude_embeddings": exclude_embeddings,
    }))  # fmt: skip


def Muon(
    learning_rate: ScalarOrSchedule = 0.001,
    adam_beta_1: float = 0.9,
    adam_beta_2: float = 0.999,
    adam_weight_decay: float | None = 0.004,
    epsilon: float = 1e-7,
    weight_decay: float | None = 0.004,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    exclude_layers: list[str] | None = None,
    exclude_embeddings: bool = True,
    muon_a: float = 3.4445,
    muon_b: float = -4.775,
    muon_c: float = 2.0315,
    adam_lr_ratio: float = 1,
    momentum: float = 0.95,
    ns_steps: int = 5,
    nesterov: bool = True,
    rms_rate: float | None = 0.2,
) -> GradientTransformation:
    """keras.optimizers.Muon (module docstring): Muon for 2-D variables, Keras's Adam for the rest.

    `exclude_layers`: regular expressions searched in each leaf's path, its keys joined by "/" as
    Keras writes a variable's path ("dense/kernel"); a match gives the leaf to Adam. Keras's
    momentum is the sum m <- mu m + g (`momentum_form="trace"`), not torch's and optax's EMA; its
    Newton-Schulz eps is 1e-7 whatever `epsilon` (Adam's) is.

    >>> import jax.numpy as jnp
    >>> from gradtx.presets import keras as pk
    >>> state = pk.Muon(exclude_layers=["head"]).init({"dense": jnp.ones((2, 3)), "head": jnp.ones((3, 1))})
    >>> sorted(state[0].inner_states)
    ['adam', 'muon']
    """
    name = "presets.keras.Muon"
    base = _base(name, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency)
    check(
        name, learning_rate=(learning_rate, LEARNING_RATE), adam_beta_1=(adam_beta_1, UNIT),
        adam_beta_2=(adam_beta_2, UNIT), epsilon=(epsilon, NONNEG), adam_lr_ratio=(adam_lr_ratio, NONNEG),
        weight_decay=(weight_decay, NONNEG + OR_NONE), adam_weight_decay=(adam_weight_decay, NONNEG + OR_NONE),
        rms_rate=(rms_rate, NONNEG + OR_NONE), muon_a=(muon_a, REAL), muon_b=(muon_b, REAL), muon_c=(muon_c, REAL),
    )  # fmt: skip
    check_flag(name, "exclude_embeddings", exclude_embeddings)
    layers = [] if exclude_layers is None else exclude_layers
    if not (isinstance(layers, list | tuple) and all(isinstance(k, str) for k in layers)):
        raise ArgumentTypeError(name, "exclude_layers", f"must be a list of strings or None, got {exclude_layers!r}")
    renames = {"beta": "momentum", "ns_coeffs": "(muon_a, muon_b, muon_c)"}
    with arguments_of(name, renames):
        matrices = [
            scale_by_muon((muon_a, muon_b, muon_c), ns_steps, momentum, 1e-7, nesterov=nesterov, momentum_form="trace")
        ]
        matrices += [] if rms_rate is None else [scale_by_shape(consistent_rms=rms_rate)]
        matrices += [add_decayed_weights(weight_decay)] if weight_decay is not None and _is_on(weight_decay) else []
        others = [scale_by_adam(adam_beta_1, adam_beta_2, epsilon, eps_hat=True)]
        others += [] if adam_lr_ratio == 1 else [scale(adam_lr_ratio)]
        others += (
            [add_decayed_weights(adam_weight_decay)]
            if adam_weight_decay is not None and _is_on(adam_weight_decay)
            else []
        )
        labels = muon_labels(tuple(layers), exclude_embeddings)
        routed = partition({
            "muon": chain(*matrices, scale_by_learning_rate(learning_rate)),
            "adam": chain(*others, scale_by_learning_rate(learning_rate)),
        }, labels)  # fmt: skip
        return _around(name, base, [routed])


__all__ = ["Muon"]  # and muon_labels, which presets.keras imports (a preset's repr names it)
