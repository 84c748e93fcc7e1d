"""The small speedrun: optimizers race a character-level transformer to a validation loss, on a CPU.

Every optimizer trains the same model on the same data with the same batches and the same step
budget; each sweeps a few learning rates, all vmapped into one compiled program per optimizer (with
the seeds vmapped too), so a sweep costs one compile. The script prints a markdown table (best
learning rate, final validation loss over the seeds, steps and seconds to a target validation
loss), writes a PNG of the validation curves, and with `--out` a JSON of every curve.

    python examples/speedrun.py --quick                    # a smoke run of a few seconds
    python examples/speedrun.py --out examples/results/speedrun.json   # the full run, ~15 min on 2 cores
    python examples/speedrun.py --optimizers adamw muon --steps 600 --seeds 5 --out /tmp/run.json

Data: the English text of the documentation topics that ship with every CPython
(`pydoc_data.topics.topics`, about 465k characters; the dict's values joined in sorted key order),
one token per character; the first 90% trains, the last 10% validates. Model: a pre-norm
decoder-only transformer in plain JAX (learned positions, RMSNorm, 4-head causal attention, GELU
MLP, untied zero-initialised head). Every schedule but schedule-free's is a linear warmup over the
first 10% of the steps and a linear decay to zero; schedule-free AdamW warms up over the same
steps and needs no decay (it is evaluated at `schedule_free_eval_params`, its averaged point).

Adding an optimizer is one entry in OPTIMIZERS: (name, builder of (learning rate, steps), the
learning rates to sweep[, the params to evaluate from (state, params)]). A builder that cannot
take a traced learning rate is swept by a Python loop over the rates instead (one compile each).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gradtx

# ---------------------------------------------------------------------------------------------------
# The race card


def warmup_decay(peak: Any, steps: int) -> Callable[[jax.Array], jax.Array]:
    """Linear warmup to `peak` over the first 10% of `steps`, then linear decay to 0 (peak may be traced)."""
    warmup = max(1, steps // 10)

    def schedule(count: jax.Array) -> jax.Array:
        count = jnp.asarray(count, jnp.float32)
        up = (count + 1) / warmup
        down = (steps - count) / max(1, steps - warmup)
        return peak * jnp.clip(jnp.minimum(up, down), 0.0, 1.0)

    return schedule


def hidden_matrices(params: dict) -> dict:
    """Muon's leaves: the attention and MLP kernels; embeddings, head and gains go to Muon's Adam."""
    return {
        key: [{name: gradtx.MuonDimensionNumbers() if name[0] == "w" else None for name in layer} for layer in sub]
        if key == "layers"
        else None
        for key, sub in params.items()
    }


def muon_with_adam(lr: Any, steps: int) -> gradtx.GradientTransformation:
    """Muon for the hidden matrices; its Adam, at a quarter of Muon's rate, for everything else."""
    schedule, adam_schedule = warmup_decay(lr, steps), warmup_decay(lr / 4, steps)
    return gradtx.muon(schedule, adam_learning_rate=adam_schedule, muon_weight_dimension_numbers=hidden_matrices)


class Entry(NamedTuple):
    name: str
    build: Callable[[Any, int], gradtx.GradientTransformation]  # (learning rate, steps) -> optimizer
    learning_rates: tuple[float, ...]
    eval_params: Callable[[Any, Any], Any] | None = None  # (state, params) -> the params to evaluate


# Each optimizer at its defaults but the learning rate (and its schedule); each sweep spans a
# factor of 4 around the rate its authors recommend for a model this size.
OPTIMIZERS = [
    Entry("adamw", lambda lr, n: gradtx.adamw(warmup_decay(lr, n)), (4e-3, 8e-3, 1.6e-2)),
    Entry("nadamw", lambda lr, n: gradtx.nadamw(warmup_decay(lr, n)), (4e-3, 8e-3, 1.6e-2)),
    Entry("lion", lambda lr, n: gradtx.lion(warmup_decay(lr, n)), (5e-4, 1e-3, 2e-3)),
    Entry("muon", lambda lr, n: muon_with_adam(lr, n), (0.02, 0.04, 0.08)),
    Entry(
        "schedule_free_adamw",
        lambda lr, n: gradtx.schedule_free_adamw(lr, warmup_steps=max(1, n // 10)),
        (4e-3, 8e-3, 1.6e-2),
        gradtx.schedule_free_eval_params,
    ),
]

# ---------------------------------------------------------------------------------------------------
# Data


def load_text() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train tokens, validation tokens, vocabulary): pydoc's topics, one token per character, split 90/10."""
    from pydoc_data.topics import topics

    text = "".join(topics[k] for k in sorted(topics))
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    tokens = np.array([index[c] for c in text], np.int32)
    cut = int(0.9 * len(tokens))
    return tokens[:cut], tokens[cut:], vocab


# ---------------------------------------------------------------------------------------------------
# Model


class Config(NamedTuple):
    vocab: int
    context: int = 64
    width: int = 64
    heads: int = 4
    layers: int = 2


def init_params(key: jax.Array, cfg: Config) -> dict:
    """Normal(0, 1/fan_in) kernels, residual outputs scaled by 1/sqrt(2 layers), zero head, unit gains."""
    d = cfg.width
    keys = iter(jax.random.split(key, 2 + 6 * cfg.layers))

    def normal(shape: tuple[int, ...], std: float) -> jax.Array:
        return std * jax.random.normal(next(keys), shape, jnp.float32)

    out_std = 1.0 / math.sqrt(2 * cfg.layers)
    layers = [
        {
            "norm1": jnp.ones(d),
            "wq": normal((d, d), d**-0.5),
            "wk": normal((d, d), d**-0.5),
            "wv": normal((d, d), d**-0.5),
            "wo": normal((d, d), out_std * d**-0.5),
            "norm2": jnp.ones(d),
            "w1": normal((d, 4 * d), d**-0.5),
            "w2": normal((4 * d, d), out_std * (4 * d) ** -0.5),
        }
        for _ in range(cfg.layers)
    ]
    return {
        "embed": normal((cfg.vocab, d), 1.0),
        "position": normal((cfg.context, d), 0.1),
        "layers": layers,
        "norm": jnp.ones(d),
        "head": jnp.zeros((d, cfg.vocab)),
    }


def rms_norm(x: jax.Array, gain: jax.Array) -> jax.Array:
    return gain * x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)


def logits_fn(params: dict, tokens: jax.Array, cfg: Config) -> jax.Array:
    """(batch, context) tokens -> (batch, context, vocab) logits of the next token."""
    b, t = tokens.shape
    h = cfg.heads
    x = params["embed"][tokens] + params["position"][:t]
    mask = jnp.tril(jnp.ones((t, t), bool))
    for layer in params["layers"]:
        y = rms_norm(x, layer["norm1"])
        q, k, v = (
            (y @ layer[w]).reshape(b, t, h, -1).transpose(0, 2, 1, 3) for w in ("wq", "wk", "wv")
        )  # (b, h, t, d / h)
        scores = jnp.where(mask, q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]), -jnp.inf)
        y = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, t, -1)
        x = x + y @ layer["wo"]
        y = rms_norm(x, layer["norm2"])
        x = x + jax.nn.gelu(y @ layer["w1"]) @ layer["w2"]
    return rms_norm(x, params["norm"]) @ params["head"]


def loss_fn(params: dict, windows: jax.Array, cfg: Config) -> jax.Array:
    """Mean cross-entropy (nats per character) of each window's next characters."""
    logits = logits_fn(params, windows[:, :-1], cfg)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, windows[:, 1:, None], axis=-1))


def windows_at(tokens: jax.Array, starts: jax.Array, length: int) -> jax.Array:
    return jax.vmap(lambda s: jax.lax.dynamic_slice(tokens, (s,), (length,)))(starts)


# ---------------------------------------------------------------------------------------------------
# One run: steps in a scan, the validation loss every `eval_every` steps


class Setup(NamedTuple):
    cfg: Config
    steps: int
    batch: int
    eval_every: int
    val_windows: int


def make_run(entry: Entry, setup: Setup, train: jax.Array, val: jax.Array) -> Callable:
    """run(learning rate, seed key) -> (validation losses (evals,), train losses (steps,))."""
    cfg, length = setup.cfg, setup.cfg.context + 1
    # The same validation windows for every run: evenly spaced over the validation text.
    val_starts = jnp.linspace(0, len(val) - length, setup.val_windows).astype(jnp.int32)
    val_batch = windows_at(val, val_starts, length)
    evaluate = entry.eval_params or (lambda state, params: params)

    def run(lr: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        init_key, data_key = jax.random.split(key)
        params = init_params(init_key, cfg)
        tx = entry.build(lr, setup.steps)
        state = tx.init(params)

        def step(carry, k):
            params, state = carry
            starts = jax.random.randint(k, (setup.batch,), 0, len(train) - length)
            loss, grads = jax.value_and_grad(loss_fn)(params, windows_at(train, starts, length), cfg)
            updates, state = tx.update(grads, state, params)
            return (gradtx.apply_updates(params, updates), state), loss

        def chunk(carry, keys):
            carry, losses = jax.lax.scan(step, carry, keys)
            return carry, (loss_fn(evaluate(carry[1], carry[0]), val_batch, cfg), losses)

        keys = jax.random.split(data_key, setup.steps).reshape(setup.steps // setup.eval_every, setup.eval_every)
        _, (val_losses, train_losses) = jax.lax.scan(chunk, (params, state), keys)
        return val_losses, train_losses.reshape(-1)

    return run


def race(entry: Entry, setup: Setup, seeds: int, train: jax.Array, val: jax.Array) -> dict:
    """Every (seed, learning rate) of one optimizer: vmapped in one program, or a loop of them."""
    run = make_run(entry, setup, train, val)
    lrs = jnp.asarray(entry.learning_rates, jnp.float32)
    keys = jax.random.split(jax.random.key(0), seeds)  # seed i: the same init and batches for every optimizer
    sweep = jax.jit(jax.vmap(jax.vmap(run, in_axes=(0, None)), in_axes=(None, 0)))  # (seeds, lrs, ...)
    start = time.perf_counter()
    try:
        compiled = sweep.lower(lrs, keys).compile()
        vmapped = True
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError):  # needs a concrete rate
        vmapped = False
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    if vmapped:
        val_losses, train_losses = jax.block_until_ready(compiled(lrs, keys))
    else:
        one = jax.jit(jax.vmap(lambda lr, key: run(lr, key), in_axes=(None, 0)))
        outs = [jax.block_until_ready(one(float(lr), keys)) for lr in entry.learning_rates]
        val_losses = jnp.stack([o[0] for o in outs], axis=1)
        train_losses = jnp.stack([o[1] for o in outs], axis=1)
    run_s = time.perf_counter() - start
    return {
        "learning_rates": list(entry.learning_rates),
        "vmapped": vmapped,
        "compile_s": compile_s,
        # One run's share of the program's time per step (runs share the cores in the vmapped program).
        "seconds_per_step": run_s / (setup.steps * seeds * len(entry.learning_rates)),
        "val_loss": np.asarray(val_losses).tolist(),  # [seed][learning rate][eval]
        "train_loss": np.asarray(train_losses)[..., setup.eval_every - 1 :: setup.eval_every].tolist(),
    }


# ---------------------------------------------------------------------------------------------------
# The table


def summarize(results: dict, target: float, eval_every: int) -> list[dict]:
    """Per optimizer, at the learning rate with the lowest mean final validation loss over seeds."""
    rows = []
    for name, r in results.items():
        val = np.asarray(r["val_loss"])  # (seeds, lrs, evals)
        final = np.where(np.isfinite(val[:, :, -1]), val[:, :, -1], np.inf)
        best = int(np.argmin(final.mean(axis=0)))
        curves = val[:, best]
        reached = [int(np.argmax(c <= target)) if (c <= target).any() else None for c in curves]
        steps = [(i + 1) * eval_every for i in reached if i is not None]
        median_steps = float(np.median(steps)) if len(steps) == len(reached) else None
        rows.append(
            {
                "optimizer": name,
                "learning_rate": r["learning_rates"][best],
                "final_mean": float(final[:, best].mean()),
                "final_std": float(final[:, best].std()),
                "steps_to_target": median_steps,
                "seeds_reaching": f"{len(steps)}/{len(reached)}",
                "seconds_to_target": None if median_steps is None else median_steps * r["seconds_per_step"],
                "ms_per_step": 1e3 * r["seconds_per_step"],
            }
        )
    return sorted(rows, key=lambda row: row["final_mean"])


def markdown(rows: list[dict], target: float) -> str:
    lines = [
        f"| optimizer | best lr | final val loss | steps to {target:g} | seconds to {target:g} | ms/step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        steps = "not reached" if r["steps_to_target"] is None else f"{r['steps_to_target']:.0f}"
        secs = "-" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.1f}"
        lines.append(
            f"| {r['optimizer']} | {r['learning_rate']:g} | {r['final_mean']:.3f} ± {r['final_std']:.3f} "
            f"| {steps} ({r['seeds_reaching']}) | {secs} | {r['ms_per_step']:.2f} |"
        )
    return "\n".join(lines)


def plot(results: dict, eval_every: int, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, r in results.items():
        val = np.asarray(r["val_loss"])
        best = int(np.argmin(np.nan_to_num(val[:, :, -1], nan=np.inf).mean(axis=0)))
        steps = eval_every * np.arange(1, val.shape[-1] + 1)
        mean = val[:, best].mean(axis=0)
        (line,) = ax.plot(steps, mean, label=f"{name} (lr {r['learning_rates'][best]:g})")
        ax.fill_between(steps, val[:, best].min(axis=0), val[:, best].max(axis=0), color=line.get_color(), alpha=0.2)
        finals = np.nan_to_num(val[:, :, -1], nan=np.inf)
        bx.plot(r["learning_rates"], np.minimum(finals.mean(axis=0), 10), "o-", label=name, color=line.get_color())
    ax.axhline(target, color="gray", ls=":", label=f"target {target:g}")
    ax.set(xlabel="step", ylabel="validation loss (nats/char)", title="best learning rate: mean, min-max over seeds")
    ax.set_ylim(top=min(ax.get_ylim()[1], 3.5))
    ax.legend()
    bx.set(xscale="log", xlabel="peak learning rate", ylabel="final validation loss", title="the sweep")
    bx.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = [e.name for e in OPTIMIZERS]
    parser.add_argument("--optimizers", nargs="+", default=names, choices=names)
    parser.add_argument("--steps", type=int, default=200, help="steps per run (a multiple of --eval-every)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="windows per step")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--target", type=float, default=2.25, help="validation loss to reach (nats/char)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds: tiny model, 40 steps, 1 seed")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (the PNG goes beside it)")
    args = parser.parse_args()

    train_tokens, val_tokens, vocab = load_text()
    if args.quick:
        cfg, steps, seeds, batch, eval_every, val_windows = Config(len(vocab), 32, 32, 4, 1), 40, 1, 8, 10, 32
        target = 3.5 if args.target == 2.25 else args.target
    else:
        cfg, steps, seeds, batch, eval_every, val_windows = (
            Config(len(vocab)),
            args.steps,
            args.seeds,
            args.batch,
            args.eval_every,
            256,
        )
        target = args.target
    if steps % eval_every:
        parser.error(f"--steps ({steps}) must be a multiple of --eval-every ({eval_every})")
    setup = Setup(cfg, steps, batch, eval_every, val_windows)
    train, val = jnp.asarray(train_tokens), jnp.asarray(val_tokens)
    n_params = sum(x.size for x in jax.tree.leaves(init_params(jax.random.key(0), cfg)))
    print(
        f"{len(train_tokens):,} train / {len(val_tokens):,} validation characters, vocabulary {len(vocab)}; "
        f"{cfg.layers} layers, width {cfg.width}, {cfg.heads} heads, context {cfg.context}, {n_params:,} params; "
        f"{steps} steps of {batch} windows, {seeds} seed(s)"
    )

    results = {}
    for entry in (e for e in OPTIMIZERS if e.name in args.optimizers):
        r = results[entry.name] = race(entry, setup, seeds, train, val)
        finals = np.asarray(r["val_loss"])[:, :, -1].mean(axis=0)
        sweep = ", ".join(f"{lr:g}: {f:.3f}" for lr, f in zip(entry.learning_rates, finals, strict=True))
        how = "vmapped" if r["vmapped"] else "looped"
        print(f"{entry.name:>20}  compile {r['compile_s']:.1f} s, {how}; final val loss by lr {sweep}")

    rows = summarize(results, target, eval_every)
    print()
    print(markdown(rows, target))

    out = args.out or Path("out") / ("speedrun_quick.json" if args.quick else "speedrun.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}, "
        f"jax {jax.__version__}",
        "config": cfg._asdict(),
        "params": n_params,
        "steps": steps,
        "seeds": seeds,
        "batch": batch,
        "eval_every": eval_every,
        "val_windows": val_windows,
        "target": target,
    }
    out.write_text(json.dumps({"meta": meta, "table": rows, "results": results}, indent=1))
    png = out.with_suffix(".png")
    plot(results, eval_every, target, png)
    print(f"\nwrote {out} and {png}")


if __name__ == "__main__":
    main()
