"""bfloat16 parameters with a float32 optimizer state, against an all-float32 run.

`gradtx.adam(lr, accumulator_dtype=jnp.float32)` keeps Adam's first moment mu in float32 whatever
the parameters' dtype; the second moment nu is always stored in at least float32 by gradtx (an EMA
with b2 = 0.999 changes by 0.1% a step, below bfloat16's resolution of about 0.4%, so a bfloat16 nu
would stop decaying). The script trains the same MLP four ways and prints, for each, the dtypes of
the parameters, the forward pass, the gradients and Adam's moments, the bytes per parameter
(parameters plus optimizer state), the final train loss and the test accuracy; it writes a PNG of
the loss curves. "Forward pass in bfloat16" means the matmuls, bias additions and tanh; the logits
are cast to float32 for the softmax and the loss in every run.

    float32                params, forward pass, gradients, mu and nu in float32
    bf16 forward           float32 params ("master weights") cast to bfloat16 for the forward pass;
                           gradients (through the cast), mu and nu float32
    bf16 params, f32 mu    params, forward pass and gradients in bfloat16; mu and nu float32:
                           adam(lr, accumulator_dtype=jnp.float32)
    bf16 params, bf16 mu   the same with adam(lr): mu takes the params' dtype (bfloat16), nu float32

With bfloat16 params, gradtx computes Adam's update in float32 (from the bfloat16 gradient and the
moments, each read in float32 whatever its stored dtype), rounds it once to the gradient's dtype
(bfloat16), and `apply_updates` adds it to the bfloat16 params: so every step's
change to a weight is rounded to bfloat16's 8 significant bits, and a change smaller than half the
spacing between bfloat16 numbers near the weight is lost. Float32 master weights avoid that, at 4
more bytes per parameter.

    python examples/mixed_precision.py                         # 1000 steps, out/mixed_precision.png
    python examples/mixed_precision.py --steps 300 --out /tmp/bf16.png --seed 1

Data: scikit-learn's bundled digits (1797 images of 8x8 pixels, 10 classes), split 80/20 with a
fixed seed; `--seed` sets the initial weights (the same values, rounded to bfloat16 in the bfloat16
runs) and the minibatch order. Model: 64-128-10 with tanh, minibatches of 128, Adam with learning
rate 3e-3.
"""

from __future__ import annotations

import argparse
import itertools
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from digits import load_data, minibatches
from tqdm import tqdm

import gradtx

SIZES = (64, 128, 10)  # input pixels, hidden units, classes
BATCH = 128
LEARNING_RATE = 3e-3

# (name, dtype of the params, dtype of the forward pass, optimizer)
RUNS = [
    ("float32", jnp.float32, jnp.float32, gradtx.adam(LEARNING_RATE)),
    ("bf16 forward", jnp.float32, jnp.bfloat16, gradtx.adam(LEARNING_RATE)),
    ("bf16 params, f32 mu", jnp.bfloat16, jnp.bfloat16, gradtx.adam(LEARNING_RATE, accumulator_dtype=jnp.float32)),
    ("bf16 params, bf16 mu", jnp.bfloat16, jnp.bfloat16, gradtx.adam(LEARNING_RATE)),
]


# ---------------------------------------------------------------------------------------------------
# Model: the forward pass in a given dtype


def init_mlp(seed: int, dtype) -> list[dict[str, jax.Array]]:
    """LeCun-normal weights (variance 1 / fan_in, right for tanh) and zero biases, drawn in float32
    and then cast to `dtype`, so that every run starts from the same weights (up to rounding).

    Drawn with NumPy: jax.random would compile a program for each shape, for a one-time job.
    """
    rng = np.random.default_rng(seed)
    return [
        {
            "w": jnp.asarray(rng.normal(size=(m, n)) / m**0.5, jnp.float32).astype(dtype),
            "b": jnp.zeros(n, dtype),
        }
        for m, n in itertools.pairwise(SIZES)
    ]


def predict(params: list[dict[str, jax.Array]], x: jax.Array, dtype) -> jax.Array:
    """Logits in float32; everything before them in `dtype` (params and inputs cast to it)."""
    params = jax.tree.map(lambda p: p.astype(dtype), params)  # a no-op where they are in `dtype`
    x = x.astype(dtype)
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return (x @ params[-1]["w"] + params[-1]["b"]).astype(jnp.float32)


def loss_fn(params: list[dict[str, jax.Array]], x: jax.Array, y: jax.Array, dtype) -> jax.Array:
    """Mean cross-entropy, in float32, of the logits against integer labels; forward pass in `dtype`."""
    log_probs = jax.nn.log_softmax(predict(params, x, dtype))
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


# ---------------------------------------------------------------------------------------------------
# Training step, dtypes and sizes


@partial(jax.jit, static_argnums=(0, 1))
def train_step(tx: gradtx.GradientTransformation, dtype, params, opt_state, x: jax.Array, y: jax.Array, idx):
    loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx], dtype)  # grads in the params' dtypes
    updates, opt_state = tx.update(grads, opt_state, params)  # computed in float32, returned in grads' dtypes
    return gradtx.apply_updates(params, updates), opt_state, loss  # params + updates, in the params' dtypes


@partial(jax.jit, static_argnums=0)
def evaluate(dtype, params, x_train, y_train, x_test, y_test) -> tuple[jax.Array, jax.Array]:
    """Loss on the whole training set and accuracy on the test set, forward pass in `dtype`."""
    accuracy = jnp.mean(jnp.argmax(predict(params, x_test, dtype), axis=1) == y_test)
    return loss_fn(params, x_train, y_train, dtype), accuracy


def dtypes(tree) -> str:
    """The dtypes of a tree's leaves, e.g. 'bfloat16' or 'float32, int32'."""
    return ", ".join(sorted({str(leaf.dtype) for leaf in jax.tree.leaves(tree)}))


def nbytes(tree) -> int:
    return sum(leaf.nbytes for leaf in jax.tree.leaves(tree))


def adam_state(opt_state) -> gradtx.ScaleByAdamState:
    """The ScaleByAdamState inside the chain's state (a tuple, one entry per member)."""
    return next(s for s in opt_state if isinstance(s, gradtx.ScaleByAdamState))


# ---------------------------------------------------------------------------------------------------
# Data, plot, main


def plot(curves: dict[str, np.ndarray], path: Path) -> None:
    """Loss curves (a moving average over 20 steps, as minibatch losses are noisy) to a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no GUI: the Agg backend
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    window = min(20, len(next(iter(curves.values()))))
    for (name, losses), style in zip(curves.items(), ("-", "--", ":", "-."), strict=False):
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses) + 1), smooth, style, label=name, linewidth=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"train loss (minibatch, mean of {window} steps)")
    ax.set_title(f"bfloat16 vs float32, MLP {'-'.join(map(str, SIZES))} on 8x8 digits, Adam {LEARNING_RATE:g}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per run (default 1000)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/mixed_precision.png"),
        help="PNG of the loss curves (default out/mixed_precision.png)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and minibatch order")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")

    x_train, x_test, y_train, y_test = (jnp.asarray(a) for a in load_data())
    batches = minibatches(len(x_train), args.steps, (BATCH,), args.seed)
    print(
        f"MLP {'-'.join(map(str, SIZES))} (tanh) on 8x8 digits: {len(x_train)} train / {len(x_test)} test"
        f" images, {args.steps} steps of minibatch {BATCH}, {jax.default_backend()}\n"
    )

    curves, rows = {}, []
    for name, param_dtype, dtype, tx in RUNS:
        print(f"{name:>20}: {tx!r}")
        params = init_mlp(args.seed, param_dtype)
        opt_state = tx.init(params)
        n_params = sum(leaf.size for leaf in jax.tree.leaves(params))
        grads = jax.eval_shape(jax.grad(partial(loss_fn, dtype=dtype)), params, x_train, y_train)  # no compute
        losses = []
        for idx in tqdm(batches, desc=name, unit="step", leave=False):
            params, opt_state, loss = train_step(tx, dtype, params, opt_state, x_train, y_train, idx)
            losses.append(loss)
        curves[name] = np.asarray(jnp.stack(losses))
        state = adam_state(opt_state)
        train_loss, accuracy = evaluate(dtype, params, x_train, y_train, x_test, y_test)
        rows.append((
            name, dtypes(params), jnp.dtype(dtype).name, dtypes(grads), dtypes(state.mu), dtypes(state.nu),
            (nbytes(params) + nbytes(opt_state)) / n_params, float(train_loss), float(accuracy),
        ))  # fmt: skip

    columns = ("params", "forward", "grads", "mu", "nu")
    print(f"\n{'run':<20} " + " ".join(f"{c:>9}" for c in columns) + f" {'bytes/param':>11} {'train loss':>10}"
          f" {'test accuracy':>13}")  # fmt: skip
    for name, *kinds, per_param, train_loss, accuracy in rows:
        print(f"{name:<20} " + " ".join(f"{k:>9}" for k in kinds) + f" {per_param:>11.2f} {train_loss:>10.5f}"
              f" {accuracy:>13.2%}")  # fmt: skip
    print(
        f"\nbytes/param: parameters plus optimizer state (mu, nu and one int32 step count) over the"
        f" {n_params:,} parameters. The gradients (2 or 4 bytes a parameter) exist only during a step."
    )
    plot(curves, args.out)
    print(f"loss curves: {args.out}")


if __name__ == "__main__":
    main()
