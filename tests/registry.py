"""The one registry of every public transformation, optimizer and schedule.

Each case builds its object from a module `m`, so the same line builds gradtx's object
(`m = gradtx`) and, where `optax=True`, optax's same-named object with the same arguments
(`m = optax`): the reference tests compare the two. `sweep` builds the object from one
hyperparameter, for the vmap-over-hyperparameters tests. `test_registry.py` checks that the
registry covers exactly the public API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

import gradtx


@dataclass(frozen=True)
class Case:
    name: str  # the public name this case exercises
    make: Callable[[Any], Any]  # module -> object
    label: str = ""  # distinguishes several cases of one name
    optax: bool = True  # optax has the same name, arguments and numbers
    sweep: Callable[[Any, Any], Any] | None = None  # (module, hyperparameter) -> object
    sweep_values: tuple[float, ...] = ()
    rtol: float = 2e-5  # agreement with optax; looser only where gradtx rounds less (stated at the case)
    # Keyword arguments every update needs: a dict, or a function (params, grads) -> dict of that
    # step's (`objective_args`); the tests pass `extra_args_for(params, grads)`.
    extra_args: dict[str, Any] | Callable[[Any, Any], dict[str, Any]] = field(default_factory=dict, hash=False)

    @property
    def id(self) -> str:
        return f"{self.name}[{self.label}]" if self.label else self.name

    def build(self) -> Any:
        return self.make(gradtx)

    def extra_args_for(self, params: Any, grads: Any) -> dict[str, Any]:
        """The keyword arguments of the update at `params` with gradients `grads`."""
        return self.extra_args(params, grads) if callable(self.extra_args) else self.extra_args


def resolve(name: str) -> Any:
    """The public object a case name stands for: `gradtx.adam` for "adam", `gradtx.presets.torch.Adam`
    for "presets.torch.Adam"."""
    obj: Any = gradtx
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def halve(updates: Any, params: Any) -> Any:
    """A module-level function for the `stateless` cases (module-level, so it pickles)."""
    return jax.tree.map(lambda u: u / 2, updates)


def halve_leaf(update: jax.Array, param: Any) -> jax.Array:
    return update / 2


def _not_bias(path: Any) -> bool:
    return not jax.tree_util.keystr(path).endswith("['b']")


def decay_mask(params: Any) -> Any:
    """Weight decay on every leaf but biases named 'b' (a callable mask, as users write them)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: _not_bias(path), params)


def biases(params: Any) -> Any:
    """True for the biases named 'b' only: the leaves freeze and selective_transform hold fixed."""
    return jax.tree_util.tree_map_with_path(lambda path, _: not _not_bias(path), params)


def adam_or_sgd(params: Any) -> Any:
    """Labels for partition: SGD for biases named 'b', Adam for the rest (a label function)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "adam" if _not_bias(path) else "sgd", params)


def freeze_biases(params: Any) -> Any:
    """Labels for multi_transform: biases named 'b' frozen (set_to_zero), the rest trained."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "train" if _not_bias(path) else "freeze", params)


def ramp(count: jax.Array) -> jax.Array:
    """A momentum schedule written here, independent of gradtx.schedules."""
    return jnp.minimum(0.5 + 0.05 * count.astype(jnp.float32), 0.9)


def two_of_three(step: jax.Array) -> jax.Array:
    """A condition for conditionally_mask / conditionally_transform: two steps of every three, from the first."""
    return step % 3 != 2


def squares(updates: Any) -> Any:
    """A measurement with the updates' structure and dtypes (so measure_with_ema's output is one)."""
    return jax.tree.map(jnp.square, updates)


def global_norm_of(updates: Any) -> jax.Array:
    """A measurement for snapshot and monitor (module-level, so the repr names it)."""
    return gradtx.tree.norm(updates)


def halve_update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
    """An optax-style update without keyword arguments, for with_extra_args_support."""
    return jax.tree.map(lambda u: u / 2, updates), state


def _quadratic(p: Any, g: Any, q: Any) -> jax.Array:
    """f(q) = 1 + <g, q - p> + |q - p|^2 / 2 over the float leaves, summed in their widest dtype."""
    parts = [
        jnp.sum(gi * (qi - pi) + (qi - pi) ** 2 / 2)
        for pi, gi, qi in zip(*map(jax.tree.leaves, (p, g, q)), strict=True)
    ]
    dtype = max((gradtx.tree.compute_dtype(x.dtype) for x in parts), key=lambda d: d.itemsize, default=jnp.float32)
    return 1 + sum((x.astype(dtype) for x in parts), jnp.zeros([], dtype))


def objective_args(params: Any, grads: Any) -> dict[str, Any]:
    """What the registry-driven tests pass to the EXTRA_ARGS entries that read the loss (lbfgs, the
    line searches, Polyak): value=, grad= and value_fn= of f(q) = 1 + <g, q - p> + |q - p|^2 / 2,
    whose value at the params p is 1 and whose gradient there is the test's gradients g. value_fn is
    a jax.tree_util.Partial, so that it passes through jit as an argument."""
    p, g = gradtx.tree.trainable(params), gradtx.tree.trainable(grads)
    return {"value": 1.0, "grad": grads, "value_fn": jax.tree_util.Partial(_quadratic, p, g)}


def hessian_args(params: Any, grads: Any) -> dict[str, Any]:
    """What Sophia's Hutchinson estimate reads: obj_fn=, the quadratic of `objective_args` (a Partial)."""
    return {"obj_fn": objective_args(params, grads)["value_fn"]}


def contrib(m: Any) -> Any:
    """Where optax keeps a name under optax.contrib, gradtx at the top level: `contrib(m).cocob(...)`."""
    return getattr(m, "contrib", m)


def warmup_factor(count: jax.Array) -> jax.Array:
    """A LambdaLR-style factor of the count, written here (module-level, so it pickles)."""
    return jnp.minimum((count + 1) / 10, 1.0)


def decay_after_5(count: jax.Array) -> jax.Array:
    """A MultiplicativeLR-style factor: 1 for the first 5 counts, then 0.9 each."""
    return jnp.where(count > 5, 0.9, 1.0)


def matrices(params: Any) -> Any:
    """True for the 2-D leaves: where scale_by_muon and its kin act alone (a mask for masked)."""
    return jax.tree.map(lambda x: jnp.ndim(x) == 2, params)


def _muon_dims(m: Any, updates: Any) -> Any:
    """Dimension numbers for each leaf of the (masked) updates, in module m's own class (optax's
    scale_by_muon needs a tree of its MuonDimensionNumbers; MaskedNode subtrees pass through)."""
    return jax.tree.map(lambda _: contrib(m).MuonDimensionNumbers(), updates)


def gradtx_muon_dims(updates: Any) -> Any:
    return _muon_dims(gradtx, updates)


def optax_muon_dims(updates: Any) -> Any:
    import optax

    return _muon_dims(optax, updates)


def muon_dims(m: Any) -> Any:
    return gradtx_muon_dims if m is gradtx else optax_muon_dims


LR = (1e-3, 1e-2, 1e-1)
DECAYS = (0.5, 0.9, 0.99)

TRANSFORMS: tuple[Case, ...] = (
    Case("identity", lambda m: m.identity()),
    Case("stateless", lambda m: m.stateless(halve)),
    Case("stateless_with_tree_map", lambda m: m.stateless_with_tree_map(halve_leaf)),
    Case("chain", lambda m: m.chain(m.clip_by_global_norm(1.0), m.scale_by_adam(), m.scale_by_learning_rate(0.01))),
    Case("named_chain", lambda m: m.named_chain(("clip", m.clip(0.5)), ("sgd", m.scale_by_learning_rate(0.1)))),
    Case("scale", lambda m: m.scale(-0.1), sweep=lambda m, h: m.scale(h), sweep_values=LR),
    Case(
        "scale_by_learning_rate", lambda m: m.scale_by_learning_rate(0.1),
        sweep=lambda m, h: m.scale_by_learning_rate(h), sweep_values=LR,
    ),
    Case(
        "scale_by_learning_rate", lambda m: m.scale_by_learning_rate(m.exponential_decay(0.1, 3, 0.5)),
        label="schedule",
    ),
    Case("scale_by_schedule", lambda m: m.scale_by_schedule(m.linear_schedule(1.0, 0.1, 10))),
    Case("scale_by_sign", lambda m: m.scale_by_sign()),
    Case("trace", lambda m: m.trace(0.9), sweep=lambda m, h: m.trace(h), sweep_values=DECAYS),
    Case("trace", lambda m: m.trace(0.9, nesterov=True), label="nesterov"),
    Case("trace", lambda m: m.trace(ramp, nesterov=True), label="schedule", optax=False),
    Case("ema", lambda m: m.ema(0.9), sweep=lambda m, h: m.ema(h), sweep_values=DECAYS),
    Case("ema", lambda m: m.ema(0.9, debias=False), label="raw"),
    Case(
        "scale_by_momentum", lambda m: m.scale_by_momentum(0.9), optax=False,
        sweep=lambda m, h: m.scale_by_momentum(h), sweep_values=DECAYS,
    ),
    Case("scale_by_momentum", lambda m: m.scale_by_momentum(ramp, nesterov=True), label="nesterov", optax=False),
    Case("nesterov", lambda m: m.nesterov(0.9), optax=False),
    Case("nesterov", lambda m: m.chain(m.trace(ramp), m.nesterov(ramp)), label="after-trace", optax=False),
    Case("bias_correction", lambda m: m.bias_correction(0.9), optax=False),
    Case("scale_by_rms", lambda m: m.scale_by_rms(), sweep=lambda m, h: m.scale_by_rms(h), sweep_values=DECAYS),
    Case(
        "scale_by_rms", lambda m: m.scale_by_rms(0.99, 1e-6, 0.5, eps_in_sqrt=False, bias_correction=True),
        label="torch-eps,bias",
    ),
    Case("scale_by_stddev", lambda m: m.scale_by_stddev()),
    Case("scale_by_stddev", lambda m: m.scale_by_stddev(0.95, 0.1, bias_correction=True), label="bias"),
    Case("scale_by_rss", lambda m: m.scale_by_rss()),
    Case("scale_by_rss", lambda m: m.scale_by_rss(0.0, 1e-10, eps_in_sqrt=False), label="torch", optax=False),
    Case("scale_by_adadelta", lambda m: m.scale_by_adadelta()),
    Case("scale_by_adam", lambda m: m.scale_by_adam(), sweep=lambda m, h: m.scale_by_adam(b1=h), sweep_values=DECAYS),
    Case("scale_by_adam", lambda m: m.scale_by_adam(b2=0.99, eps_root=1e-8, nesterov=True), label="nesterov"),
    # optax rounds b1 * mu to bfloat16 before adding (1 - b1) g; gradtx rounds once, at the end.
    Case("scale_by_adam", lambda m: m.scale_by_adam(mu_dtype=jnp.bfloat16), label="bf16-mu", rtol=5e-2),
    Case(  # torch's SparseAdam on dense gradients (tests/test_presets_sparse_adam.py)
        "scale_by_adam", lambda m: m.scale_by_adam(eps_hat=True, where_nonzero=True), label="where_nonzero", optax=False
    ),
    Case("scale_by_amsgrad", lambda m: m.scale_by_amsgrad()),
    Case("scale_by_adamax", lambda m: m.scale_by_adamax()),
    Case("clip", lambda m: m.clip(0.5), sweep=lambda m, h: m.clip(h), sweep_values=(0.1, 0.5, 2.0)),
    Case(
        "clip_by_global_norm", lambda m: m.clip_by_global_norm(1.0),
        sweep=lambda m, h: m.clip_by_global_norm(h), sweep_values=(0.1, 1.0, 10.0),
    ),
    Case(  # Keras's clipnorm: optax has no per-leaf norm clip (tests/transforms/test_clipping.py)
        "clip_by_leaf_norm", lambda m: m.clip_by_leaf_norm(0.5), optax=False,
        sweep=lambda m, h: m.clip_by_leaf_norm(h), sweep_values=(0.1, 0.5, 10.0),
    ),
    Case(
        "add_decayed_weights", lambda m: m.add_decayed_weights(0.01),
        sweep=lambda m, h: m.add_decayed_weights(h), sweep_values=(0.0, 0.01, 0.1),
    ),
    Case("add_decayed_weights", lambda m: m.add_decayed_weights(0.01, mask=decay_mask), label="mask"),
    # Layerwise. The test models' largest leaves are 3 x 4: min_dim_size_to_factor=2 factors them.
    Case("scale_by_trust_ratio", lambda m: m.scale_by_trust_ratio(trust_coefficient=0.5, eps=1e-3)),
    # Each after a normalizing step, as Adafactor uses them: on raw float16 gradients near float16's
    # maximum (test_dtypes) the params overflow at the first step, and the next step's norm is inf
    # for the whole block, which that per-coordinate test cannot tell from a bug.
    Case("scale_by_param_block_norm", lambda m: m.chain(m.clip_by_block_rms(1.0), m.scale_by_param_block_norm())),
    Case("scale_by_param_block_rms", lambda m: m.chain(m.clip_by_block_rms(1.0), m.scale_by_param_block_rms())),
    Case("clip_by_block_rms", lambda m: m.clip_by_block_rms(0.5)),
    Case("scale_by_factored_rms", lambda m: m.scale_by_factored_rms(min_dim_size_to_factor=2)),
    Case(  # torch.optim.Adafactor's form (tests/test_presets_adafactor.py)
        "scale_by_factored_rms",
        lambda m: m.scale_by_factored_rms(0, epsilon=0.0, factor_last_dims=True, eps_floor="machine"),
        label="torch", optax=False,
    ),
    Case("scale_by_relative_step", lambda m: m.scale_by_relative_step(0.5), optax=False),  # torch's, Keras's rho_t
    # The rest of the field: sign methods, Adam's descendants, gradient noise.
    Case("scale_by_lion", lambda m: m.scale_by_lion()),
    # optax applies each Rprop step one update late (tests/transforms/test_field.py shows it); torch does not.
    Case("scale_by_rprop", lambda m: m.scale_by_rprop(0.01), optax=False),
    Case("scale_by_radam", lambda m: m.scale_by_radam()),  # 30 steps: both sides of rho_t = 5 (t = 6)
    Case("scale_by_belief", lambda m: m.scale_by_belief()),
    # optax starts Yogi's m at initial_accumulator_value, gradtx (and the authors' code) at 0: both 0 here.
    Case("scale_by_yogi", lambda m: m.scale_by_yogi(initial_accumulator_value=0.0)),
    Case("scale_by_novograd", lambda m: m.scale_by_novograd()),
    # torch's NAdam and Keras's Nadam (Dozat's momentum schedule); not in optax.
    Case(
        "scale_by_nadam", lambda m: m.scale_by_nadam(momentum_decay=0.1), optax=False,
        sweep=lambda m, h: m.scale_by_nadam(b1=h), sweep_values=DECAYS,
    ),
    Case("add_noise", lambda m: m.add_noise(0.01, 0.55, 0)),  # optax warns without a key
    # L-BFGS's direction needs no loss; lbfgs and the line searches do (EXTRA_ARGS).
    Case("scale_by_lbfgs", lambda m: m.scale_by_lbfgs(memory_size=3)),
    # issue 10 (optim). With b2 = 0.5 the paper's gradient-difference weight b2 and optax 0.2.8's 1 - b2
    # agree (tests/transforms/test_adan.py checks the default against the paper, and optax's numbers).
    Case("scale_by_adan", lambda m: m.scale_by_adan(b2=0.5)),
    # optax's SM3 fails on rank-0 leaves and its DoG turns them into shape (1,): test_sm3.py and
    # test_distance_over_gradients.py compare with optax on models without them.
    Case("scale_by_sm3", lambda m: m.scale_by_sm3(), optax=False),
    Case("scale_by_optimistic_gradient", lambda m: m.scale_by_optimistic_gradient(alpha=1.0, beta=0.5)),
    Case("scale_by_distance_over_gradients", lambda m: m.scale_by_distance_over_gradients(), optax=False),
    Case("normalize_by_update_norm", lambda m: m.normalize_by_update_norm(scale_factor=0.5)),
    # Combinators and wrappers (tests/test_wrappers.py has their own tests).
    Case("set_to_zero", lambda m: m.set_to_zero()),
    Case("masked", lambda m: m.masked(m.adam(1e-3), decay_mask)),
    Case("partition", lambda m: m.partition({"adam": m.adam(1e-3), "sgd": m.sgd(0.1)}, adam_or_sgd)),
    Case(
        "multi_transform",
        lambda m: m.multi_transform({"train": m.adam(1e-3), "freeze": m.set_to_zero()}, freeze_biases),
    ),
    Case("apply_if_finite", lambda m: m.apply_if_finite(m.adam(1e-3), 3)),
    Case("MultiSteps", lambda m: m.MultiSteps(m.adam(1e-3), 3).gradient_transformation()),
    Case(
        "inject_hyperparams", lambda m: m.inject_hyperparams(m.adam)(1e-3),
        sweep=lambda m, h: m.inject_hyperparams(m.adam)(h), sweep_values=LR,
    ),
    # Issue 10: the rest of optax's transformations and wrappers (tests/transforms/test_accumulation.py,
    # test_centralize.py, test_clipping.py, test_constraints.py; tests/test_conditionally.py, test_freeze.py,
    # test_flatten.py, test_monitor.py, test_inject_stateful_hyperparams.py, test_extra_args.py).
    Case("centralize", lambda m: m.centralize()),
    Case("adaptive_grad_clip", lambda m: m.adaptive_grad_clip(0.5)),
    Case("keep_params_nonnegative", lambda m: m.keep_params_nonnegative()),
    Case("zero_nans", lambda m: m.zero_nans()),  # the one entry that turns NaN into 0: its purpose
    Case("apply_every", lambda m: m.apply_every(3)),
    Case("conditionally_mask", lambda m: m.conditionally_mask(m.adam(1e-3), two_of_three)),
    Case("conditionally_transform", lambda m: m.conditionally_transform(m.scale_by_adam(), two_of_three)),
    Case("flatten", lambda m: m.flatten(m.adam(1e-3))),
    Case("freeze", lambda m: m.freeze(biases)),
    # optax's selective_transform takes a tree mask only (it would freeze everything given a function).
    Case("selective_transform", lambda m: m.selective_transform(m.adam(1e-3), freeze_mask=biases), optax=False),
    Case("snapshot", lambda m: m.snapshot("norm", global_norm_of)),
    # A measure returns a measurement, not updates: measure_with_ema is exercised inside monitor. optax's
    # monitor state changes structure at the first update (lax.scan cannot carry it): tests/test_monitor.py.
    Case("monitor", lambda m: m.monitor({"norm": global_norm_of, "ema": m.measure_with_ema(squares, 0.9)}),
         optax=False),
    Case("measure_with_ema", lambda m: m.monitor({"ema": m.measure_with_ema(squares, 0.5, debias=False)}),
         optax=False),
    # optax's inject_stateful_hyperparams is its inject_hyperparams under a name that warns (deprecated).
    Case("inject_stateful_hyperparams",
         lambda m: m.inject_stateful_hyperparams(m.adam)(m.exponential_decay(1e-3, 3, 0.5)), optax=False),
    Case("with_extra_args_support",
         lambda m: m.with_extra_args_support(m.GradientTransformation(m.init_empty_state, halve_update))),
    # Polyak averaging of the params (tests/transforms/test_averaging.py)
    Case(
        "ema_params", lambda m: m.ema_params(0.9), optax=False,
        sweep=lambda m, h: m.ema_params(h), sweep_values=DECAYS,
    ),
    Case(
        "ema_params", lambda m: m.ema_params(0.9, start_step=1, overwrite_frequency=2), label="overwrite",
        optax=False,
    ),
    Case("swa_params", lambda m: m.swa_params(start_step=1, every=2), optax=False),
    # Memory and scale (gradtx/memory/; tests/test_quantize.py, test_compact.py, test_precision.py).
    # min_size=0 and small blocks, so that the test models' small leaves are stored compactly too.
    Case(
        "state_dtype", lambda m: m.state_dtype(m.adam(1e-3), nu=jnp.bfloat16, stochastic_rounding=True),
        optax=False,
    ),
    Case("state_dtype", lambda m: m.state_dtype(m.sgd(0.1, momentum=0.9), jnp.bfloat16), label="all", optax=False),
    Case("quantized_state", lambda m: m.quantized_state(m.adam(1e-3), bits=8, min_size=0), optax=False),
    Case(
        "quantized_state",
        lambda m: m.quantized_state(m.adamw(1e-3, weight_decay=0.01), bits=4, block_size=4, min_size=0),
        label="4bit", optax=False,
    ),
    Case(
        "quantized_state",
        lambda m: m.quantized_state(m.lion(1e-3), fp8=True, block_size=2, min_size=0, stochastic_rounding=True),
        label="fp8-sr", optax=False,
    ),
    Case("stochastic_rounding", lambda m: m.stochastic_rounding(m.adam(1e-3)), optax=False),
    Case("kahan_summation", lambda m: m.kahan_summation(m.adamw(1e-3, weight_decay=0.01)), optax=False),
    # optax.contrib's (their own tests: tests/transforms/test_<family>.py, tests/test_sam.py,
    # test_mechanize.py, test_split_real_and_imaginary.py, with the authors' packages where they exist).
    Case("normalize", lambda m: contrib(m).normalize()),
    Case("scale_by_cocob", lambda m: contrib(m).scale_by_cocob()),
    # optax.contrib keeps scale_by_dog and scale_by_dowg in a private module (tested there).
    Case("scale_by_dog", lambda m: m.scale_by_dog(), optax=False),
    Case("scale_by_dowg", lambda m: m.scale_by_dowg(), optax=False),
    # optax takes sqrt(k + 1) of its int32 count in float32 also in float64 runs (params within 1e-5 by step
    # 30); gradtx in the params' precision, as the authors' code: tests/transforms/test_madgrad.py.
    Case("scale_by_madgrad", lambda m: m.scale_by_madgrad(0.1), optax=False),
    Case("scale_by_acprop", lambda m: contrib(m).scale_by_acprop()),
    Case("sam", lambda m: contrib(m).sam(m.sgd(0.1), m.chain(contrib(m).normalize(), m.sgd(0.05)), sync_period=3)),
    Case("mechanize", lambda m: contrib(m).mechanize(m.adam(1.0))),
    # RMSProp inside, whose (real) second moment the dtype tests expect of complex params too.
    Case("split_real_and_imaginary", lambda m: contrib(m).split_real_and_imaginary(m.rmsprop(1e-2))),
    # issue 11: schedule-free (tests/test_schedule_free.py: the authors' package, optax with schedules)
    Case("schedule_free", lambda m: contrib(m).schedule_free(m.adam(0.1, b1=0.0), 0.1, b1=0.8),
         sweep=lambda m, h: m.schedule_free(m.sgd(h), h), sweep_values=LR),
    # issue 11: Muon's direction on the matrices (masked: it orthogonalizes matrices only). tests/test_muon.py
    # and test_presets_muon.py compare the other forms with torch, Keras, Keller Jordan's and pytorch_optimizer's.
    Case("scale_by_muon",
         lambda m: m.masked(contrib(m).scale_by_muon(weight_dimension_numbers=muon_dims(m)), matrices)),
    Case("scale_by_muon",
         lambda m: m.masked(m.scale_by_muon(ns_steps=4, nesterov=False, momentum_form="ema", eps_floor=True,
                                            weight_dimension_numbers=m.MuonDimensionNumbers(1, 0)), matrices),
         label="torch-form", optax=False),
    Case("scale_by_muon", lambda m: m.masked(m.scale_by_muon(momentum_form="trace", adaptive=True), matrices),
         label="keras-form,adaptive", optax=False),
    Case("scale_by_shape", lambda m: m.masked(m.scale_by_shape(consistent_rms=0.2), matrices), optax=False),
    Case("scale_by_normuon", lambda m: m.masked(m.scale_by_normuon(b2=0.9), matrices), optax=False),
    # issue 11: Adam's newer relatives (not in optax; tests/test_came.py, test_laprop.py and
    # test_adam_atan2.py hold them to the authors' packages). CAME factors the 3 x 4 leaves (its default).
    Case("scale_by_came", lambda m: m.scale_by_came(), optax=False),
    Case("scale_by_laprop", lambda m: m.scale_by_laprop(), optax=False),
    Case("scale_by_adam_atan2", lambda m: m.scale_by_adam_atan2(), optax=False),
    # issue 11: caution (tests/test_cautious.py: pytorch_optimizer's Lion(cautious=True), a NumPy
    # loop of cautious weight decay). A direction (the paper's use), and a whole optimizer's descent steps.
    Case("cautious", lambda m: m.cautious(m.scale_by_lion()), optax=False,
         sweep=lambda m, h: m.cautious(m.trace(h)), sweep_values=DECAYS),
    Case("cautious", lambda m: m.cautious(m.adam(1e-2), "mean", descent=True), label="descent,mean", optax=False),
    Case("add_cautious_decayed_weights", lambda m: m.add_cautious_decayed_weights(0.01), optax=False,
         sweep=lambda m, h: m.add_cautious_decayed_weights(h), sweep_values=(0.0, 0.01, 0.1)),
    # issue 11: Adam's newer relatives (tests/test_mars.py holds them to their authors' code)
    Case("scale_by_mars", lambda m: m.scale_by_mars(gamma=0.1), optax=False),
    Case("scale_by_adam_mini", lambda m: m.scale_by_adam_mini(b2=0.9), optax=False),
    # issue 11: Shampoo, blocked (block_size 2 splits the test matrices), recomputed every 2 steps, Adam-grafted;
    # tests/test_shampoo.py compares it with pytorch_optimizer's ScalableShampoo and a NumPy loop
    Case("scale_by_shampoo", lambda m: m.scale_by_shampoo(block_size=2, precondition_frequency=2), optax=False),
    # issue 11: PSGD Kron (tests/test_kron.py: kron_torch 0.3.3 and heavyball 3.2.1 in float64). The state
    # holds a PRNG key (rng_key) for the update decision and the probes; p = 0.5 exercises both branches.
    Case("scale_by_kron", lambda m: m.scale_by_kron(preconditioner_update_probability=0.5), optax=False),
    # issue 11: Adam's newer relatives (optax.contrib's). tests/test_adopt.py and test_ademamix.py compare
    # their other settings with optax, torch-adopt and pytorch_optimizer. A fast b3, so that the slow EMA
    # weighs in within the tests' steps.
    Case("scale_by_adopt", lambda m: contrib(m).scale_by_adopt(),
         sweep=lambda m, h: m.scale_by_adopt(b1=h), sweep_values=DECAYS),
    Case("scale_by_ademamix", lambda m: contrib(m).scale_by_ademamix(b3=0.9),
         sweep=lambda m, h: m.scale_by_ademamix(b3=h), sweep_values=DECAYS),
    Case("scale_by_simplified_ademamix", lambda m: contrib(m).scale_by_simplified_ademamix(alpha=1.0),
         sweep=lambda m, h: m.scale_by_simplified_ademamix(alpha=h), sweep_values=(0.0, 1.0, 5.0)),
)  # fmt: skip

OPTIMIZERS: tuple[Case, ...] = (
    Case("sgd", lambda m: m.sgd(0.1), sweep=lambda m, h: m.sgd(h), sweep_values=LR),
    Case("sgd", lambda m: m.sgd(0.1, momentum=0.9), label="momentum"),
    Case("sgd", lambda m: m.sgd(0.1, momentum=0.9, nesterov=True), label="nesterov"),
    Case("adagrad", lambda m: m.adagrad(0.1), sweep=lambda m, h: m.adagrad(h), sweep_values=LR),
    Case("rmsprop", lambda m: m.rmsprop(0.01), sweep=lambda m, h: m.rmsprop(h), sweep_values=LR),
    Case("rmsprop", lambda m: m.rmsprop(0.01, centered=True), label="centered"),
    Case("rmsprop", lambda m: m.rmsprop(0.01, momentum=0.9, nesterov=True), label="nesterov"),
    Case("rmsprop", lambda m: m.rmsprop(0.01, eps_in_sqrt=False, bias_correction=True), label="bias"),
    Case("adadelta", lambda m: m.adadelta(1.0), sweep=lambda m, h: m.adadelta(h), sweep_values=(0.5, 1.0, 2.0)),
    Case("adam", lambda m: m.adam(1e-3), sweep=lambda m, h: m.adam(h), sweep_values=LR),
    Case("adam", lambda m: m.adam(1e-3, nesterov=True), label="nesterov"),
    Case("adamw", lambda m: m.adamw(1e-3, weight_decay=0.01), sweep=lambda m, h: m.adamw(h), sweep_values=LR),
    Case("adamw", lambda m: m.adamw(1e-3, weight_decay=0.1, mask=decay_mask), label="mask"),
    Case("nadam", lambda m: m.nadam(1e-3)),
    Case("kron", lambda m: m.kron(1e-3, weight_decay=0.01), optax=False),
    Case("adamax", lambda m: m.adamax(1e-3)),
    Case("amsgrad", lambda m: m.amsgrad(1e-3)),
    Case("lamb", lambda m: m.lamb(1e-3, weight_decay=0.01, mask=decay_mask)),
    Case("lars", lambda m: m.lars(0.1, weight_decay=0.01, trust_ratio_mask=decay_mask)),
    Case(
        "adafactor",
        lambda m: m.adafactor(1e-2, min_dim_size_to_factor=2, momentum=0.9, weight_decay_rate=1e-3),
    ),
    Case(
        "lion", lambda m: m.lion(1e-3, weight_decay=0.01, mask=decay_mask),
        sweep=lambda m, h: m.lion(h), sweep_values=LR,
    ),
    Case("radam", lambda m: m.radam(1e-3)),
    Case("adabelief", lambda m: m.adabelief(1e-3)),
    Case("yogi", lambda m: m.yogi(1e-2)),
    Case("novograd", lambda m: m.novograd(1e-2, weight_decay=1e-3)),
    Case("noisy_sgd", lambda m: m.noisy_sgd(0.01, key=0)),
    Case("sign_sgd", lambda m: m.sign_sgd(1e-3)),
    Case("signum", lambda m: m.signum(1e-3)),
    Case("rprop", lambda m: m.rprop(1e-3), optax=False),  # as scale_by_rprop; tests/test_optimizers_torch.py
    # issue 10 (optim)
    Case("sgd", lambda m: m.sgd(0.1, momentum=0.9, dampening=0.5), label="dampening", optax=False),  # torch's
    Case("adan", lambda m: m.adan(1e-3, b2=0.5, weight_decay=0.01, mask=decay_mask)),  # b2 = 0.5: see scale_by_adan
    Case("nadamw", lambda m: m.nadamw(1e-3, weight_decay=0.01)),
    Case("adamaxw", lambda m: m.adamaxw(1e-3, weight_decay=0.01)),
    Case("sm3", lambda m: m.sm3(0.1), optax=False),  # as scale_by_sm3
    Case("fromage", lambda m: m.fromage(0.01)),
    Case("optimistic_gradient_descent", lambda m: m.optimistic_gradient_descent(0.1)),
    # optax.optimistic_adam warns (DeprecationWarning, an error in this suite); test_optimistic.py compares.
    Case("optimistic_adam", lambda m: m.optimistic_adam(1e-3), optax=False),
    Case("optimistic_adam_v2", lambda m: m.optimistic_adam_v2(1e-3, beta=0.5)),
    Case("asgd", lambda m: m.asgd(0.05, t0=2), optax=False),  # torch's; tests/transforms/test_asgd.py
    Case("ftrl", lambda m: m.ftrl(0.1, l1_regularization_strength=0.01), optax=False),  # Keras's; test_ftrl.py
    # torch.optim.LBFGS's iteration, no line search (tests/test_presets_lbfgs.py)
    Case("safeguarded_lbfgs", lambda m: m.safeguarded_lbfgs(0.5, memory_size=3), optax=False),
    # optax.contrib's
    Case("cocob", lambda m: contrib(m).cocob(weight_decay=1e-3)),
    Case("dog", lambda m: contrib(m).dog(weight_decay=1e-3), sweep=lambda m, h: m.dog(h), sweep_values=(0.5, 1.0, 2.0)),
    # A first guess of the squared distance that keeps the first steps well above float16's resolution
    # of the params, which DoWG reads (tests/test_dtypes.py runs float16 params against float64 ones).
    Case("dowg", lambda m: contrib(m).dowg(init_estim_sq_dist=1.0)),
    Case("madgrad", lambda m: m.madgrad(0.1, weight_decay=1e-3), optax=False, sweep=lambda m, h: m.madgrad(h),
         sweep_values=LR),  # as scale_by_madgrad
    Case("acprop", lambda m: contrib(m).acprop(1e-2, weight_decay=1e-3), sweep=lambda m, h: m.acprop(h),
         sweep_values=LR),
    # issue 11: Muon (optax.contrib's) and NorMuon, AdamW for the leaves that are not matrices
    Case("muon", lambda m: contrib(m).muon(1e-2, weight_decay=1e-2, weight_decay_mask=decay_mask),
         sweep=lambda m, h: m.muon(h), sweep_values=LR),
    Case("muon", lambda m: contrib(m).muon(1e-2, nesterov=False, consistent_rms=0.2, adam_learning_rate=1e-3),
         label="consistent-rms"),
    Case("normuon", lambda m: m.normuon(1e-2, weight_decay=1e-2), optax=False,
         sweep=lambda m, h: m.normuon(h), sweep_values=LR),
    # issue 11: Adam's newer relatives, with the weight decay their chains add
    Case("came", lambda m: m.came(1e-3, weight_decay=1e-2), optax=False, sweep=lambda m, h: m.came(h),
         sweep_values=LR),
    Case("laprop", lambda m: m.laprop(1e-3, weight_decay=1e-2), optax=False, sweep=lambda m, h: m.laprop(h),
         sweep_values=LR),
    Case("adam_atan2", lambda m: m.adam_atan2(1e-3, weight_decay=1e-2), optax=False,
         sweep=lambda m, h: m.adam_atan2(h), sweep_values=LR),
    Case("mars", lambda m: m.mars(1e-2, weight_decay=1e-2, weight_decay_mask=decay_mask), optax=False,
         sweep=lambda m, h: m.mars(h), sweep_values=LR),
    Case("adam_mini", lambda m: m.adam_mini(1e-2, weight_decay=1e-2, mask=decay_mask, blocks=m.adam_mini_blocks(2)),
         optax=False, sweep=lambda m, h: m.adam_mini(h), sweep_values=LR),
    Case("shampoo", lambda m: m.shampoo(1e-3, weight_decay=1e-2), optax=False,
         sweep=lambda m, h: m.shampoo(h), sweep_values=LR),
    Case("presets.torch.Muon", lambda m: m.presets.torch.Muon(lr=1e-2), optax=False),
    Case("presets.keras.Muon", lambda m: m.presets.keras.Muon(learning_rate=1e-2), optax=False),
    # issue 11: ADOPT, AdEMAMix and Simplified AdEMAMix (optax.contrib's)
    Case("adopt", lambda m: contrib(m).adopt(1e-2, nesterov=True), sweep=lambda m, h: m.adopt(h), sweep_values=LR),
    Case("ademamix", lambda m: contrib(m).ademamix(1e-2, b3=0.9, weight_decay=1e-3),
         sweep=lambda m, h: m.ademamix(h), sweep_values=LR),
    Case("simplified_ademamix", lambda m: contrib(m).simplified_ademamix(1e-3, alpha=1.0, weight_decay=1e-3),
         sweep=lambda m, h: m.simplified_ademamix(h), sweep_values=LR),
    # Other frameworks' optimizers (gradtx.presets): a case for each branch the presets add to gradtx's
    # blocks (torch's AMSGrad and RAdam eps, momentum before the learning rate; Keras's eps-hat, Adamax
    # eps, decay outside the momentum); the other presets chain blocks as the optimizers above do.
    # tests/test_presets_torch.py and test_presets_keras.py hold every preset to its framework.
    Case(
        "presets.torch.Adam",
        lambda m: m.presets.torch.Adam(lr=1e-3, weight_decay=1e-2, amsgrad=True, decoupled_weight_decay=True),
        optax=False, sweep=lambda m, h: m.presets.torch.Adam(lr=h, amsgrad=True), sweep_values=LR,
    ),
    Case("presets.torch.RAdam", lambda m: m.presets.torch.RAdam(lr=1e-3, weight_decay=1e-2), optax=False),
    Case(
        "presets.torch.RMSprop", lambda m: m.presets.torch.RMSprop(lr=1e-2, momentum=0.9, centered=True),
        optax=False, sweep=lambda m, h: m.presets.torch.RMSprop(lr=h, momentum=0.9), sweep_values=LR,
    ),
    Case("presets.torch.ASGD", lambda m: m.presets.torch.ASGD(lr=0.05, t0=2, weight_decay=1e-2), optax=False),
    Case("presets.torch.Adafactor", lambda m: m.presets.torch.Adafactor(weight_decay=1e-2), optax=False),
    Case("presets.torch.LBFGS", lambda m: m.presets.torch.LBFGS(lr=0.5, history_size=3), optax=False),
    Case("presets.torch.SparseAdam", lambda m: m.presets.torch.SparseAdam(lr=1e-2, betas=(0.8, 0.99)), optax=False),
    Case("presets.keras.Adam", lambda m: m.presets.keras.Adam(weight_decay=1e-2), optax=False),
    Case("presets.keras.Adafactor", lambda m: m.presets.keras.Adafactor(weight_decay=1e-2), optax=False),
    Case("presets.keras.AdamW", lambda m: m.presets.keras.AdamW(amsgrad=True), optax=False),
    Case("presets.keras.Adamax", lambda m: m.presets.keras.Adamax(learning_rate=1e-2), optax=False),
    Case("presets.keras.SGD", lambda m: m.presets.keras.SGD(momentum=0.9, weight_decay=1e-2), optax=False),
    Case(  # Keras's base optimizer: clipnorm and use_ema (tests/test_presets_keras_base.py)
        "presets.keras.SGD",
        lambda m: m.presets.keras.SGD(momentum=0.9, clipnorm=1.0, use_ema=True, ema_overwrite_frequency=2),
        label="clipnorm,ema", optax=False,
    ),
    # issue 11: schedule-free; optax's warmup reads the schedule one count later (see schedule_free)
    Case("schedule_free_sgd", lambda m: contrib(m).schedule_free_sgd(0.1, weight_decay=1e-3),
         sweep=lambda m, h: m.schedule_free_sgd(h), sweep_values=LR),
    Case("schedule_free_adamw", lambda m: contrib(m).schedule_free_adamw(1e-2, b1=0.8, weight_decay=1e-3),
         sweep=lambda m, h: m.schedule_free_adamw(h), sweep_values=LR),
    Case("schedule_free_adamw", lambda m: m.schedule_free_adamw(1e-2, warmup_steps=5, state_dtype=jnp.float32),
         label="warmup", optax=False),
    Case("presets.keras.ScheduleFreeAdamW",
         lambda m: m.presets.keras.ScheduleFreeAdamW(learning_rate=1e-2, warmup_steps=3, weight_decay=1e-2),
         optax=False),
    Case(  # ftrl with Keras's decay of the W that z reads
        "presets.keras.Ftrl",
        lambda m: m.presets.keras.Ftrl(learning_rate=0.1, weight_decay=1e-2, global_clipnorm=1.0), optax=False,
    ),
)  # fmt: skip

SCHEDULES: tuple[Case, ...] = (
    Case("constant_schedule", lambda m: m.constant_schedule(0.1)),
    Case("linear_schedule", lambda m: m.linear_schedule(1.0, 0.1, 50, 10)),
    Case("polynomial_schedule", lambda m: m.polynomial_schedule(1.0, 0.1, 2.0, 50, 10)),
    Case("exponential_decay", lambda m: m.exponential_decay(1.0, 10, 0.5)),
    Case(
        "exponential_decay", lambda m: m.exponential_decay(1.0, 10, 0.5, 5, staircase=True, end_value=0.2),
        label="staircase",
    ),
    Case("inverse_time_decay", lambda m: m.inverse_time_decay(1.0, 0.5), optax=False),
    Case("piecewise_constant_schedule", lambda m: m.piecewise_constant_schedule(1.0, {10: 0.5, 30: 0.1})),
    Case(
        "piecewise_interpolate_schedule",
        lambda m: m.piecewise_interpolate_schedule("cosine", 1.0, {10: 0.5, 30: 0.1}),
    ),
    Case("cosine_decay_schedule", lambda m: m.cosine_decay_schedule(1.0, 50, alpha=0.1)),
    Case("warmup_constant_schedule", lambda m: m.warmup_constant_schedule(0.0, 1.0, 10)),
    Case("warmup_cosine_decay_schedule", lambda m: m.warmup_cosine_decay_schedule(0.0, 1.0, 10, 60, 0.1)),
    Case("warmup_exponential_decay_schedule", lambda m: m.warmup_exponential_decay_schedule(0.0, 1.0, 10, 20, 0.5)),
    Case(
        "join_schedules",
        lambda m: m.join_schedules([m.constant_schedule(1.0), m.linear_schedule(1.0, 0.0, 20)], [15]),
    ),
    Case("cosine_onecycle_schedule", lambda m: m.cosine_onecycle_schedule(60, 1.0)),
    Case("linear_onecycle_schedule", lambda m: m.linear_onecycle_schedule(60, 1.0)),
    Case(
        "sgdr_schedule",
        lambda m: m.sgdr_schedule(
            [dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=20, end_value=0.1)] * 2
        ),
    ),
    Case("sutskever_momentum_schedule", lambda m: m.sutskever_momentum_schedule(0.99), optax=False),
    # torch.optim's schedules (tests/test_schedules_torch.py)
    Case("cyclic_schedule", lambda m: m.cyclic_schedule(0.01, 0.1, 5, 3, mode="triangular2"), optax=False),
    Case(
        "cyclic_momentum_schedule", lambda m: m.cyclic_momentum_schedule(0.8, 0.9, 5, 3, "exp_range", 0.99),
        optax=False,
    ),
    Case("onecycle_schedule", lambda m: m.onecycle_schedule(0.1, 60, three_phase=True), optax=False),
    Case("onecycle_momentum_schedule", lambda m: m.onecycle_momentum_schedule(60), optax=False),
    Case("lambda_schedule", lambda m: m.lambda_schedule(0.1, warmup_factor), optax=False),
    Case("multiplicative_schedule", lambda m: m.multiplicative_schedule(0.1, decay_after_5), optax=False),
    Case(
        "multiply_schedules",
        lambda m: m.multiply_schedules([m.exponential_decay(0.1, 1, 0.95), m.linear_schedule(0.1, 1.0, 10)]),
        optax=False,
    ),
    Case("swa_schedule", lambda m: m.swa_schedule(0.1, 0.05, 10), optax=False),
)  # fmt: skip

# Public names that are not builders of transformations, optimizers or schedules.
NOT_BUILDERS = frozenset(
    {
        "GradientTransformation", "EmptyState", "Params", "Updates", "OptState", "Schedule",
        "ScalarOrSchedule", "apply_updates", "incremental_update", "tree", "schedules", "abstract_state",
        "state_shardings", "MaskedNode", "LookaheadParams", "skip_not_finite", "skip_large_updates",
        "make_step", "pack", "unpack", "Packed",
        "value_and_grad_from_state", "ZoomLinesearchInfo", "BacktrackingLinesearchInfo",
        "averaged_params",  # reads the average out of a state (gradtx/transforms/averaging.py)
        # tools (gradtx/describe.py, lint.py, sweep.py, landscapes.py, viz.py, lr_finder.py, gradcheck.py)
        "describe", "lint", "state_nbytes", "sweep", "landscapes", "viz", "lr_finder", "check_grads",
        # issue 10: functions of a batch, the norm, the protocol's pieces, states, microbatching
        "global_norm", "per_example_global_norm_clip", "per_example_layer_norm_clip", "init_empty_state",
        "GradientTransformationExtraArgs", "WrappedSchedule", "StatefulSchedule", "ApplyEvery",
        "microbatching", "microbatch", "micro_grad", "micro_vmap", "reshape_batch_axis", "AccumulationType",
        "Accumulator",
        # the presets' package (its builders have cases named "presets.torch.Adam", ...) and the state
        # conversions (gradtx/convert.py)
        "presets", "state_from_optax", "state_to_optax", "remap_state", "RemapReport",
        # memory and scale (gradtx/memory/)
        "QuantizedArray", "stochastic_round", "zero_shardings",
        "asgd_averaged_params",  # issue 10 (optim): reads a state
        "schedule_free_eval_params",  # issue 11: reads a state (and the params)
        # issue 11: a spec, a matrix function and the labels muon partitions by
        "MuonDimensionNumbers", "orthogonalize_via_newton_schulz", "muon_labels",
        # issue 11: the labels mars partitions by, and Adam-mini's block counts by name (functions of params)
        "mars_labels", "adam_mini_blocks",
        "kron_decay_mask",  # issue 11: the mask kron decays by
    }
    | {name for name in gradtx.__all__ if name.endswith("State")}
)  # fmt: skip

TRANSFORMATION_CASES = TRANSFORMS + OPTIMIZERS

# Builders whose update takes params of their own type, which the registry-driven tests cannot pass:
# lookahead's params are LookaheadParams(fast, slow) and its updates such a pair, not the gradients'
# tree. tests/test_wrappers.py runs the contract checks on them (jit, vmap, pickle, repr, dtypes).
OWN_PARAMS: tuple[Case, ...] = (
    Case("lookahead", lambda m: m.lookahead(m.adam(1e-3), sync_period=3, slow_step_size=0.5)),
)

# Builders whose update needs keyword arguments (`Case.extra_args`): rollback needs the loss; lbfgs
# and the line searches value=, grad= and value_fn= (`objective_args`: a quadratic whose gradient
# at the params is the test's gradients), Polyak's step size value=. Kept out of
# TRANSFORMATION_CASES, whose tests call update without them; tests/test_contract.py passes
# `extra_args_for(params, grads)` to every update and runs them. Their numbers are checked by
# tests/test_rollback.py and tests/transforms/test_lbfgs.py, test_linesearch.py, test_polyak.py
# (against optax, torch and scipy); `optax=True` where optax has the same name, arguments and numbers.
EXTRA_ARGS: tuple[Case, ...] = (
    Case("rollback", lambda m: m.rollback(m.adam(1e-3), factor=2.0, max_consecutive_rollbacks=2),
         optax=False, extra_args={"loss": 1.0},
         sweep=lambda m, h: m.rollback(m.sgd(h)), sweep_values=LR),
    Case("rollback", lambda m: m.rollback(m.adamw(1e-3, weight_decay=0.1, mask=decay_mask), decay=0.5),
         label="mask", optax=False, extra_args={"loss": 1.0}),
    Case("lbfgs", lambda m: m.lbfgs(memory_size=3), extra_args=objective_args),
    # torch.optim.LBFGS's strong-Wolfe search (tests/test_presets_lbfgs_wolfe.py): calls of 3 iterations
    Case("safeguarded_lbfgs",
         lambda m: m.safeguarded_lbfgs(0.5, memory_size=3, linesearch="strong_wolfe", max_iter=3),
         label="strong-wolfe", optax=False, extra_args=objective_args),
    Case("presets.torch.LBFGS",
         lambda m: m.presets.torch.LBFGS(max_iter=3, history_size=3, line_search_fn="strong_wolfe"),
         label="strong-wolfe", optax=False, extra_args=objective_args),
    # A line search after a descent direction, as optax's examples use them.
    Case("scale_by_zoom_linesearch", lambda m: m.chain(m.sgd(1.0), m.scale_by_zoom_linesearch(10)),
         extra_args=objective_args),
    Case("scale_by_backtracking_linesearch",
         lambda m: m.chain(m.sgd(1.0), m.scale_by_backtracking_linesearch(10, store_grad=True)),
         extra_args=objective_args,
         sweep=lambda m, h: m.chain(m.sgd(1.0), m.scale_by_backtracking_linesearch(10, max_learning_rate=h)),
         sweep_values=(0.25, 0.5, 1.0)),
    # Each case is a whole optimizer (tests/test_lint.py checks them as such): Polyak's step before the rate.
    Case("scale_by_polyak",
         lambda m: m.chain(m.scale_by_polyak(f_min=0.5, eps=1e-3, variant="sps+"), m.scale_by_learning_rate(0.5)),
         extra_args=objective_args),
    Case("polyak_sgd", lambda m: m.polyak_sgd(max_learning_rate=0.5), extra_args=objective_args,
         sweep=lambda m, h: m.polyak_sgd(max_learning_rate=h), sweep_values=LR),
    # optax.contrib's, whose updates need the loss as `value` (tests/transforms/test_plateau.py, test_momo.py).
    Case("reduce_on_plateau",
         lambda m: m.chain(m.sgd(0.1), contrib(m).reduce_on_plateau(factor=0.5, patience=2)),
         extra_args={"value": 1.0}, sweep=lambda m, h: m.chain(m.sgd(h), m.reduce_on_plateau()), sweep_values=LR),
    Case("momo", lambda m: contrib(m).momo(0.5, weight_decay=1e-3), extra_args={"value": 1.0},
         sweep=lambda m, h: m.momo(h), sweep_values=LR),
    Case("momo_adam", lambda m: contrib(m).momo_adam(0.1, weight_decay=1e-3), extra_args={"value": 1.0}),
    # issue 11: Sophia, whose Hutchinson estimate needs obj_fn= (tests/transforms/test_sophia.py: optax.contrib
    # and the authors' SophiaG in float64). The quadratic's Hessian is the identity: h_est = z * z = 1.
    Case("sophia", lambda m: contrib(m).sophia(1e-2, update_interval=2), extra_args=hessian_args,
         sweep=lambda m, h: contrib(m).sophia(h), sweep_values=LR),
    Case("scale_by_sophia",
         lambda m: m.chain(m.scale_by_sophia(gamma=0.5, clip_threshold=None), m.scale_by_learning_rate(1e-2)),
         optax=False, extra_args=hessian_args),  # optax keeps scale_by_sophia private (optax.contrib._sophia)
    Case("hutchinson_estimator_diag_hessian",  # the estimate as a step: a whole (if odd) optimizer, for lint
         lambda m: m.chain(contrib(m).hutchinson_estimator_diag_hessian(random_seed=1), m.scale_by_learning_rate(1e-2)),
         extra_args=hessian_args),
)  # fmt: skip

# Builders whose gradients are per-example (a leading batch axis on every leaf), which the registry-driven
# tests cannot pass: tests/transforms/test_privacy.py runs the contract checks on them.
PER_EXAMPLE: tuple[Case, ...] = (
    Case("differentially_private_aggregate",
         lambda m: contrib(m).differentially_private_aggregate(1.0, 0.5, key=0), optax=True),
    Case("dpsgd", lambda m: contrib(m).dpsgd(0.1, 1.0, 0.5, seed=0, momentum=0.9)),
)  # fmt: skip
