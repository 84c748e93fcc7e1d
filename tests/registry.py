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
    extra_args: dict[str, Any] = field(default_factory=dict, hash=False)  # keyword arguments every update needs

    @property
    def id(self) -> str:
        return f"{self.name}[{self.label}]" if self.label else self.name

    def build(self) -> Any:
        return self.make(gradtx)


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


def adam_or_sgd(params: Any) -> Any:
    """Labels for partition: SGD for biases named 'b', Adam for the rest (a label function)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "adam" if _not_bias(path) else "sgd", params)


def freeze_biases(params: Any) -> Any:
    """Labels for multi_transform: biases named 'b' frozen (set_to_zero), the rest trained."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "train" if _not_bias(path) else "freeze", params)


def ramp(count: jax.Array) -> jax.Array:
    """A momentum schedule written here, independent of gradtx.schedules."""
    return jnp.minimum(0.5 + 0.05 * count.astype(jnp.float32), 0.9)


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
    Case("scale_by_amsgrad", lambda m: m.scale_by_amsgrad()),
    Case("scale_by_adamax", lambda m: m.scale_by_adamax()),
    Case("clip", lambda m: m.clip(0.5), sweep=lambda m, h: m.clip(h), sweep_values=(0.1, 0.5, 2.0)),
    Case(
        "clip_by_global_norm", lambda m: m.clip_by_global_norm(1.0),
        sweep=lambda m, h: m.clip_by_global_norm(h), sweep_values=(0.1, 1.0, 10.0),
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
    Case("presets.keras.Adam", lambda m: m.presets.keras.Adam(weight_decay=1e-2), optax=False),
    Case("presets.keras.AdamW", lambda m: m.presets.keras.AdamW(amsgrad=True), optax=False),
    Case("presets.keras.Adamax", lambda m: m.presets.keras.Adamax(learning_rate=1e-2), optax=False),
    Case("presets.keras.SGD", lambda m: m.presets.keras.SGD(momentum=0.9, weight_decay=1e-2), optax=False),
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
)  # fmt: skip

# Public names that are not builders of transformations, optimizers or schedules.
NOT_BUILDERS = frozenset(
    {
        "GradientTransformation", "EmptyState", "Params", "Updates", "OptState", "Schedule",
        "ScalarOrSchedule", "apply_updates", "incremental_update", "tree", "schedules", "abstract_state",
        "state_shardings", "MaskedNode", "LookaheadParams", "skip_not_finite", "skip_large_updates",
        "make_step", "pack", "unpack", "Packed",
        # tools (gradtx/describe.py, lint.py, sweep.py, landscapes.py, viz.py, lr_finder.py, gradcheck.py)
        "describe", "lint", "state_nbytes", "sweep", "landscapes", "viz", "lr_finder", "check_grads",
        # the presets' package (its builders have cases named "presets.torch.Adam", ...) and the state
        # conversions (gradtx/convert.py)
        "presets", "state_from_optax", "state_to_optax", "remap_state", "RemapReport",
        # memory and scale (gradtx/memory/)
        "QuantizedArray", "stochastic_round", "zero_shardings",
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

# Builders whose update needs a keyword argument (`Case.extra_args`): rollback needs the loss. Kept
# out of TRANSFORMATION_CASES, whose tests call update without one; tests/test_contract.py forwards
# `extra_args` and runs them, and tests/test_rollback.py checks their dtypes and numbers.
EXTRA_ARGS: tuple[Case, ...] = (
    Case("rollback", lambda m: m.rollback(m.adam(1e-3), factor=2.0, max_consecutive_rollbacks=2),
         optax=False, extra_args={"loss": 1.0},
         sweep=lambda m, h: m.rollback(m.sgd(h)), sweep_values=LR),
    Case("rollback", lambda m: m.rollback(m.adamw(1e-3, weight_decay=0.1, mask=decay_mask), decay=0.5),
         label="mask", optax=False, extra_args={"loss": 1.0}),
)  # fmt: skip
