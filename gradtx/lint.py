"""Checkable chains: `lint(tx)` names the mistakes that make a chain of transformations a wrong optimizer.

    sign          no sign flip, or two: apply_updates adds the updates, so the chain ascends the loss
    decay-order   weight decay after the learning rate and the sign flip: it grows the weights
    clip-order    gradient clipping after an adaptive preconditioner: it clips the preconditioned step
    two-lr        two learning-rate stages: the step is their product
    momentum-lr   momentum after a learning-rate schedule: the schedule then acts with a lag
    bias-ema      a bias correction with no raw EMA before it (or with another decay than the EMA's)
    average-order a params average (ema_params, swa_params) before another stage: it averages params
                  plus an update that is not yet the step

The rules read one table, `ROLES`: what each builder is (a sign flip, a learning-rate stage, a
preconditioner, an EMA, ...), written once here; tests/test_lint.py checks that it classifies every
builder in the registry, so a new entry must be classified. A chain is checked along every path a
leaf can take: a `masked` stage splits it into the leaves masked in and those masked out, a
`partition` into one path per label; wrappers (apply_if_finite, MultiSteps, inject_hyperparams,
lookahead, rollback) are looked through. A stage `lint` cannot see into (an optax transformation,
or a builder not in the table) turns off the sign rules on its paths: it may flip the sign itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.base import Hyperparams
from gradtx.walk import children, hyperparams_of, is_transformation, short_repr

__all__ = ["ROLES", "LintWarning", "lint"]

# Tags:
#   flip            multiplies the updates by a negative number (the descent sign)
#   lr              a learning-rate stage: multiplies the updates by a step size
#   lr-changes      its rate changes over the steps (a schedule)
#   preconditioner  divides by a running measure of the gradient's size (or takes its sign): the
#                   output no longer has the gradient's scale
#   momentum        accumulates past updates (trace, EMA)
#   ema             a raw EMA that starts at zero, which bias_correction undoes
#   bias-correction divides by 1 - a^t
#   decay           adds lambda W (weight decay)
#   grad-clip       a clipping threshold in units of the gradient (not Adafactor's update clipping)
#   zero            sets the updates to zero (frozen leaves: no rule applies after it)
#   unknown-sign    may flip the sign, depending on a value lint cannot read (a tracer)
#   average         averages params + the updates it receives (ema_params, swa_params): must come last
# and, for the builders that hold other transformations, how their updates flow:
#   sequence (chain: the members in order), branch (masked, partition: each leaf takes one
#   path), wrapper (the inner transformation's stages, as if in place).


def _number(value: Any) -> float | None:
    """A hyperparameter's value as a float: a number, a schedule at step 0, or None (a tracer)."""
    if callable(value):
        try:
            value = value(jnp.zeros([], jnp.int32))
        except Exception:
            return None
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _if(condition: bool, *names: str) -> set[str]:
    return set(names) if condition else set()


def _scale(hp: Hyperparams) -> frozenset[str]:
    s = _number(hp.step_size)
    if s is None:
        return frozenset({"lr", "unknown-sign"})
    return frozenset(_if(s < 0, "flip") | _if(abs(s) != 1, "lr"))


def _learning_rate(hp: Hyperparams) -> frozenset[str]:
    lr = _number(hp.learning_rate)
    changes = _if(callable(hp.learning_rate), "lr-changes")
    if lr is None:
        return frozenset({"lr", "unknown-sign", *changes})
    return frozenset({"lr", *changes} | _if((lr < 0) != bool(hp.flip_sign), "flip"))


def _schedule(hp: Hyperparams) -> frozenset[str]:
    s = _number(hp.step_size_fn)
    return frozenset({"lr", "lr-changes"} | (_if(True, "unknown-sign") if s is None else _if(s < 0, "flip")))


def _ema(hp: Hyperparams) -> frozenset[str]:
    return frozenset({"momentum"} | _if(not hp.debias, "ema"))  # ema(debias=True) is corrected already


def _distance_over_gradients(hp: Hyperparams) -> frozenset[str]:
    s = _number(hp.global_scale)  # its step: distance over gradients, times global_scale
    return frozenset({"preconditioner", "lr"} | (_if(True, "unknown-sign") if s is None else _if(s < 0, "flip")))


def _normalize(hp: Hyperparams) -> frozenset[str]:
    s = _number(hp.scale_factor)  # u = s g / ||g||: scale-free, of length |s|
    if s is None:
        return frozenset({"preconditioner", "lr", "unknown-sign"})
    return frozenset({"preconditioner"} | _if(s < 0, "flip") | _if(abs(s) != 1, "lr"))


def _asgd(hp: Hyperparams) -> frozenset[str]:
    return frozenset({"flip", "lr", "lr-changes"})  # a whole optimizer: -eta_k (g + lambd W), eta_k decaying


def _ftrl(hp: Hyperparams) -> frozenset[str]:
    return frozenset({"flip", "lr"} | _if(callable(hp.learning_rate), "lr-changes"))  # u = W' - W, a descent step


MOMENTUM = frozenset({"momentum"})
PRECONDITIONER = frozenset({"preconditioner"})
NONE: frozenset[str] = frozenset()

ROLES: dict[str, frozenset[str] | Callable[[Hyperparams], frozenset[str]]] = {
    # composition
    "chain": frozenset({"sequence"}),
    "named_chain": frozenset({"sequence"}),
    "masked": frozenset({"branch"}),
    "partition": frozenset({"branch"}),
    "multi_transform": frozenset({"branch"}),
    "apply_if_finite": frozenset({"wrapper"}),
    "MultiSteps": frozenset({"wrapper"}),
    "inject_hyperparams": frozenset({"wrapper"}),
    "lookahead": frozenset({"wrapper"}),
    "rollback": frozenset({"wrapper"}),
    "state_dtype": frozenset({"wrapper"}),
    "quantized_state": frozenset({"wrapper"}),
    "stochastic_rounding": frozenset({"wrapper"}),
    "kahan_summation": frozenset({"wrapper"}),
    # step sizes and the sign
    "scale": _scale,
    "scale_by_learning_rate": _learning_rate,
    "scale_by_schedule": _schedule,
    "set_to_zero": frozenset({"zero"}),
    # momentum
    "trace": MOMENTUM,
    "ema": _ema,
    "scale_by_momentum": frozenset({"momentum", "ema"}),
    "nesterov": MOMENTUM,
    "bias_correction": frozenset({"bias-correction"}),
    # preconditioners (their output is scale-free, or in Rprop's case already a step)
    "scale_by_rms": PRECONDITIONER,
    "scale_by_stddev": PRECONDITIONER,
    "scale_by_rss": PRECONDITIONER,
    "scale_by_adadelta": PRECONDITIONER,
    "scale_by_adam": PRECONDITIONER,
    "scale_by_amsgrad": PRECONDITIONER,
    "scale_by_adamax": PRECONDITIONER,
    "scale_by_nadam": PRECONDITIONER,
    "scale_by_factored_rms": PRECONDITIONER,
    "scale_by_radam": PRECONDITIONER,
    "scale_by_belief": PRECONDITIONER,
    "scale_by_yogi": PRECONDITIONER,
    "scale_by_novograd": PRECONDITIONER,
    "scale_by_lion": PRECONDITIONER,
    "scale_by_sign": PRECONDITIONER,
    "scale_by_rprop": frozenset({"preconditioner", "lr"}),  # its learning_rate is each coordinate's first step
    # clipping and decay
    "clip": frozenset({"grad-clip"}),
    "clip_by_global_norm": frozenset({"grad-clip"}),
    "clip_by_leaf_norm": frozenset({"grad-clip"}),
    "clip_by_block_rms": NONE,  # Adafactor's update clipping: meant to follow the preconditioner
    "add_decayed_weights": frozenset({"decay"}),
    # the rest: neither flip the sign nor change where a rule applies
    "identity": NONE,
    "stateless": NONE,
    "stateless_with_tree_map": NONE,
    "scale_by_trust_ratio": NONE,
    "scale_by_param_block_norm": NONE,
    "scale_by_param_block_rms": NONE,
    "add_noise": NONE,
    # issue 10: optax's remaining transformations and wrappers
    "adaptive_grad_clip": frozenset({"grad-clip"}),  # a clip of the gradients (relative to the weights)
    "centralize": NONE,
    "keep_params_nonnegative": NONE,  # reads the final step: it goes last
    "zero_nans": NONE,
    "apply_every": NONE,  # a sum of k gradients, emitted every k-th step (no decay, no lag)
    "freeze": NONE,  # zero on the frozen leaves, the identity on the others
    "snapshot": NONE,
    "monitor": NONE,  # measures the updates, passes them on
    "measure_with_ema": NONE,
    # looked through: their inner transformation's stages, as if in place (conditionally_* on the
    # steps their condition picks; selective_transform on the leaves it trains)
    "conditionally_mask": frozenset({"wrapper"}),
    "conditionally_transform": frozenset({"wrapper"}),
    "flatten": frozenset({"wrapper"}),
    "selective_transform": frozenset({"wrapper"}),
    "inject_stateful_hyperparams": frozenset({"wrapper"}),
    "with_extra_args_support": frozenset({"wrapper"}),
    # quasi-Newton directions and step-size searches. A line search or Polyak's step multiplies by a
    # step size it finds, after the chain's own (optax's chain(sgd(1.0), scale_by_..._linesearch(...))):
    # not a second "lr", and not a sign flip.
    "scale_by_lbfgs": PRECONDITIONER,
    "scale_by_zoom_linesearch": NONE,
    "scale_by_backtracking_linesearch": NONE,
    "scale_by_polyak": NONE,
    # issue 10 (optim)
    "scale_by_adan": PRECONDITIONER,
    "scale_by_sm3": PRECONDITIONER,
    "scale_by_optimistic_gradient": MOMENTUM,  # extrapolates from the previous update
    "scale_by_distance_over_gradients": _distance_over_gradients,
    "normalize_by_update_norm": _normalize,
    "asgd": _asgd,
    "ftrl": _ftrl,
    # optax.contrib's: wrappers, steps that already descend, learning-rate-free scales
    "sam": frozenset({"wrapper"}),  # looked through to its outer optimizer
    "mechanize": frozenset({"wrapper"}),
    "split_real_and_imaginary": frozenset({"wrapper"}),
    "reduce_on_plateau": NONE,  # a factor on the step of the optimizer before it, meant to multiply it
    "normalize": PRECONDITIONER,
    "scale_by_cocob": frozenset({"preconditioner", "flip"}),  # its update is the new point minus x
    "scale_by_dog": PRECONDITIONER,
    "scale_by_dowg": PRECONDITIONER,
    "scale_by_acprop": PRECONDITIONER,
    "scale_by_madgrad": lambda hp: _learning_rate_inside(hp, "preconditioner"),
    "momo": lambda hp: _learning_rate_inside(hp),
    "momo_adam": lambda hp: _learning_rate_inside(hp, "preconditioner"),
    "differentially_private_aggregate": frozenset({"grad-clip"}),
    "dpsgd": lambda hp: _learning_rate_inside(hp, "grad-clip", *(() if hp.momentum is None else ("momentum",))),
    # averages of the params (gradtx/transforms/averaging.py)
    "ema_params": frozenset({"average"}),
    "swa_params": frozenset({"average"}),
    # issue 11: Muon's orthogonalized momentum has no gradient scale left; its shape factor is fixed
    "scale_by_muon": PRECONDITIONER,
    "scale_by_normuon": PRECONDITIONER,
    "scale_by_shampoo": PRECONDITIONER,
    "scale_by_kron": PRECONDITIONER,
    "scale_by_shape": NONE,
    # issue 11: Adam's newer relatives, scale-free directions as Adam's (CAME's after its RMS clipping)
    "scale_by_came": PRECONDITIONER,
    "scale_by_laprop": PRECONDITIONER,
    "scale_by_adam_atan2": PRECONDITIONER,
    # issue 11: Sophia's clipped step is scale-free; Hutchinson's estimate is curvature, not a step;
    # caution masks its inner transformation's update (looked through); cautious decay is a decay
    "scale_by_sophia": PRECONDITIONER,
    "hutchinson_estimator_diag_hessian": NONE,
    "cautious": frozenset({"wrapper"}),
    "add_cautious_decayed_weights": frozenset({"decay"}),
    # issue 11: MARS is Adam on a corrected, clipped gradient
    "scale_by_mars": PRECONDITIONER,
    "scale_by_adam_mini": PRECONDITIONER,
    # schedule-free: y moves as its base optimizer's steps do (the base holds the rate and the sign)
    "schedule_free": frozenset({"wrapper"}),
    # the presets' blocks (gradtx/presets/): Adafactor's relative step min(lr, 1 / sqrt(t)) is a
    # decaying rate; torch's L-BFGS iteration returns the step itself, rate and sign included
    "scale_by_relative_step": frozenset({"lr", "lr-changes"}),
    "safeguarded_lbfgs": lambda hp: _learning_rate_inside(hp, "preconditioner"),
    # issue 11: Adam's newer relatives
    "scale_by_adopt": PRECONDITIONER,
    "scale_by_ademamix": PRECONDITIONER,
    "scale_by_simplified_ademamix": PRECONDITIONER,
}  # fmt: skip


def _learning_rate_inside(hp: Hyperparams, *more: str) -> frozenset[str]:
    """A stage that takes the learning rate and descends (its update is the step itself)."""
    return frozenset({"lr", "flip", *more} | _if(callable(hp.learning_rate), "lr-changes"))


def tags(tx: Any) -> frozenset[str] | None:
    """The tags of a stage, or None where it is not in ROLES (or not a gradtx transformation)."""
    hp = hyperparams_of(tx)
    if hp is None or hp.builder not in ROLES:
        return None
    role = ROLES[hp.builder]
    return role(hp) if callable(role) else role


class LintWarning(NamedTuple):
    """One finding: the rule's name, the stage it is about (as built), and what to do."""

    rule: str
    stage: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


class _Step(NamedTuple):
    tx: Any
    tags: frozenset[str] | None  # None: opaque


MAX_PATHS = 256


def paths(tx: Any) -> list[tuple[tuple[str, ...], list[_Step]]]:
    """Every path a leaf can take through `tx`: (where it branched, the stages it meets in order)."""
    t = tags(tx)
    if t is None or not t & {"sequence", "branch", "wrapper"}:
        return [((), [_Step(tx, t)])]
    kids = children(tx)
    if "wrapper" in t:
        return paths(kids[0][1]) if kids else [((), [])]
    if "sequence" in t:
        out: list[tuple[tuple[str, ...], list[_Step]]] = [((), [])]
        for _, child in kids:
            out = [(w1 + w2, p1 + p2) for (w1, p1), (w2, p2) in itertools.product(out, paths(child))][:MAX_PATHS]
        return out
    hp = hyperparams_of(tx)
    assert hp is not None
    if hp.builder == "masked":
        inner = [((f"masked in by {short_repr(tx)}", *w), p) for w, p in paths(kids[0][1])]
        mask = [] if callable(hp.mask) else jax.tree.leaves(hp.mask)
        if mask and all(mask):
            return inner
        outside: list[tuple[tuple[str, ...], list[_Step]]] = [((f"masked out by {short_repr(tx)}",), [])]
        return outside if mask and not any(mask) else inner + outside
    out = []
    for label, child in kids:
        out += [((f"labelled {label!r} in {short_repr(tx)}", *w), p) for w, p in paths(child)]
    return out


def _where(where: tuple[str, ...]) -> str:
    return f" (for the leaves {', '.join(where)})" if where else ""


def _check_path(where: tuple[str, ...], steps: list[_Step]) -> list[LintWarning]:
    found: list[LintWarning] = []
    at = _where(where)
    zero = next((i for i, s in enumerate(steps) if s.tags is not None and "zero" in s.tags), None)
    if zero is not None:
        steps = steps[:zero]  # everything after set_to_zero is multiplied by zero
    known = all(s.tags is not None and "unknown-sign" not in s.tags for s in steps)
    flips = [s for s in steps if s.tags is not None and "flip" in s.tags]
    # An odd number of flips descends (a decay flipped in and out around its own stage: Keras's
    # presets); an even number, none included, ascends.
    if zero is None and known and len(flips) % 2 == 0:
        if not flips:
            found.append(LintWarning(
                "sign", short_repr(steps[-1].tx) if steps else "(nothing)",
                f"no stage flips the sign{at}: apply_updates adds the updates, so this ascends the loss."
                " End the chain with scale_by_learning_rate(learning_rate), which multiplies by -learning_rate.",
            ))  # fmt: skip
        else:
            names = ", ".join(short_repr(s.tx) for s in flips)
            found.append(LintWarning(
                "sign", short_repr(flips[-1].tx),
                f"the sign is flipped {len(flips)} times{at}, by {names}: this ascends the loss."
                " Keep one (an optimizer such as adam(...) already ends with scale_by_learning_rate).",
            ))  # fmt: skip
    seen: list[_Step] = []
    for step in steps:
        t = step.tags or frozenset()
        name = short_repr(step.tx)
        lr_before = [s for s in seen if s.tags is not None and "lr" in s.tags]
        flip_before = [s for s in seen if s.tags is not None and "flip" in s.tags]
        if "decay" in t and lr_before and len(flip_before) % 2 == 1:  # flipped back: the descent sign
            found.append(LintWarning(
                "decay-order", name,
                f"{name} comes after the learning rate {short_repr(lr_before[-1].tx)} and the sign flip{at}:"
                " the decay is not scaled by the learning rate and has the wrong sign (it grows the weights)."
                " Put it before the learning rate: chain(..., add_decayed_weights(wd), scale_by_learning_rate(lr)).",
            ))  # fmt: skip
        pre = [s for s in seen if s.tags is not None and "preconditioner" in s.tags]
        if "grad-clip" in t and pre:
            found.append(LintWarning(
                "clip-order", name,
                f"{name} comes after the preconditioner {short_repr(pre[-1].tx)}{at}: its threshold, chosen"
                " for gradients, then bounds the preconditioned step. Clip first: chain(clip..., scale_by_...).",
            ))  # fmt: skip
        if "lr" in t and lr_before:
            found.append(LintWarning(
                "two-lr", name,
                f"two learning-rate stages{at}: {short_repr(lr_before[-1].tx)} and {name}; the step is their"
                " product. Keep one (an optimizer such as adam(...) already has one).",
            ))  # fmt: skip
        changing = [s for s in lr_before if s.tags is not None and "lr-changes" in s.tags]
        if "momentum" in t and changing:
            found.append(LintWarning(
                "momentum-lr", name,
                f"{name} comes after the learning-rate schedule {short_repr(changing[-1].tx)}{at}: it averages"
                " steps scaled by past rates, so the schedule acts with a lag of about 1 / (1 - decay) steps."
                " Put the momentum before the learning rate (as torch.optim.SGD does).",
            ))  # fmt: skip
        if "bias-correction" in t:
            emas = [s for s in seen if s.tags is not None and "ema" in s.tags]
            if not emas:
                found.append(LintWarning(
                    "bias-ema", name,
                    f"{name} has no raw EMA before it{at}: it divides by 1 - a^t, which undoes only the zero"
                    " start of an EMA with that decay (ema(a, debias=False) or scale_by_momentum(a)).",
                ))  # fmt: skip
            else:
                a, b = _number(step.tx.hyperparams.decay), _number(emas[-1].tx.hyperparams.decay)
                if a is not None and b is not None and a != b:
                    found.append(LintWarning(
                        "bias-ema", name,
                        f"{name} corrects an EMA of decay {a}, but the EMA before it, {short_repr(emas[-1].tx)},"
                        f" has decay {b}{at}. Give both the same decay.",
                    ))  # fmt: skip
        averages = [s for s in seen if s.tags is not None and "average" in s.tags]
        if averages and "average" not in t and not any(w.rule == "average-order" for w in found):
            found.append(LintWarning(
                "average-order", short_repr(averages[-1].tx),
                f"{short_repr(averages[-1].tx)} comes before {name}{at}: it averages params + the updates it"
                " receives, which are not yet the step. Put it last: chain(optimizer, ema_params(...)).",
            ))  # fmt: skip
        seen.append(step)
    return found


def lint(tx: Any) -> list[LintWarning]:
    """The mistakes in a chain used as an optimizer (updates added to the params by `apply_updates`).

        sign:        exactly one stage flips the sign (scale_by_learning_rate, or a negative scale)
        decay-order: add_decayed_weights not after both the learning rate and the sign flip
        clip-order:  clip / clip_by_global_norm not after an adaptive preconditioner
        two-lr:      at most one learning-rate stage
        momentum-lr: no momentum after a learning-rate schedule
        bias-ema:    bias_correction(a) after a raw EMA of decay a
        average-order: ema_params / swa_params last (they average params + the step)

    Every path a leaf can take is checked (a masked stage splits the leaves in two, a partition by
    label), and the finding says which leaves it is about. Returns the findings, [] for a clean
    chain; every optimizer of gradtx is clean. Each stage's role is read from `ROLES`. Momentum
    after a constant learning rate is the same algorithm as before it and is not reported (gradtx's
    rmsprop and lars, as optax's, put it there). Weight decay after a learning rate that does not
    flip the sign, before the stage that does, is Adafactor's order (optax's): its sign is right and
    its size is not scaled by the learning rate, as adafactor documents; it is not reported.

    >>> import gradtx
    >>> gradtx.lint(gradtx.adamw(1e-3))
    []
    >>> for w in gradtx.lint(gradtx.chain(gradtx.adam(1e-3), gradtx.add_decayed_weights(1e-2))):
    ...     print(w.rule, "|", w.stage)
    decay-order | add_decayed_weights(weight_decay=0.01)
    """
    if not is_transformation(tx):
        raise TypeError(f"lint: expected a gradient transformation, got {type(tx).__name__}: {tx!r}")
    found: list[LintWarning] = []
    for where, steps in paths(tx):
        for w in _check_path(where, steps):
            if w not in found:
                found.append(w)
    return found
