"""Gradient accumulation: k microbatches of size b, one optimizer step, the update of a batch of k*b.

When a batch does not fit in memory, split it into k microbatches, add up their gradients one
microbatch at a time, and take one optimizer step with the mean. gradtx has no wrapper for this
(optax's MultiSteps) yet, so the script writes it out: a `lax.scan` over the microbatches carries
the running sum of the gradients (in float32), so only one microbatch's activations are alive at a
time, and the sum divided by k goes to `tx.update`:

    g = (1/k) sum_j grad L_j(W),   L_j = mean loss over microbatch j (b examples)
      = grad of the mean loss over all k*b examples     (the microbatches have equal size b)

The script first checks this: from the same parameters and optimizer state, it computes the gradient
and the update both ways and prints the largest difference (float32 rounding: the sums run in another
order); it exits with an error if they differ by more than 1e-5 of the largest entry. Then it trains
three times with the same optimizer for the same number of steps: accumulating k microbatches of b,
one batch of k*b (the two curves should lie on each other), and one microbatch of b per step with no
accumulation (k times fewer examples per step). It prints a table and how far apart the first two
runs' parameters end up, and writes a PNG of the loss curves.

    python examples/gradient_accumulation.py                  # k=4 x b=32, 500 steps, out/gradient_accumulation.png
    python examples/gradient_accumulation.py --microbatches 8 --microbatch-size 16 --steps 200 --out /tmp/acc.png

Data: scikit-learn's bundled digits (1797 images of 8x8 pixels, 10 classes), split 80/20 with a
fixed seed; `--seed` sets the initial weights and the minibatch order. Model: 64-64-10 with tanh,
float32; optimizer: SGD with learning rate 0.1 and momentum 0.9 (heavy ball).

Why SGD with momentum for the check: its update is linear in the gradient, so the float32 rounding
of the two gradients passes to the updates unchanged. Adam's first update is g / (|g| + eps), which
magnifies a rounding difference in any coordinate whose gradient is near eps = 1e-8: with Adam(3e-3)
in its place, the first updates of `--microbatches 3 --microbatch-size 16 --seed 1` differed by 8e-4 of
the learning rate in one coordinate while the gradients agreed to 2e-8.
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

SIZES = (64, 64, 10)  # input pixels, hidden units, classes
LEARNING_RATE, MOMENTUM = 0.1, 0.9
RELATIVE_TOLERANCE = 1e-5  # float32 rounding of sums in another order stays far below this


# ---------------------------------------------------------------------------------------------------
# Model


def init_mlp(seed: int) -> list[dict[str, jax.Array]]:
    """LeCun-normal weights (variance 1 / fan_in, right for tanh) and zero biases, float32.

    Drawn with NumPy: jax.random would compile a program for each shape, for a one-time job.
    """
    rng = np.random.default_rng(seed)
    return [
        {"w": jnp.asarray(rng.normal(size=(m, n)) / m**0.5, jnp.float32), "b": jnp.zeros(n, jnp.float32)}
        for m, n in itertools.pairwise(SIZES)
    ]


def predict(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params: list[dict[str, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean cross-entropy of the logits against integer labels."""
    log_probs = jax.nn.log_softmax(predict(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


# ---------------------------------------------------------------------------------------------------
# Gradient accumulation


def accumulated_loss_and_grads(params, x: jax.Array, y: jax.Array, idx: jax.Array):
    """Mean loss and mean gradient over the microbatches `idx` (shape (k, b)), one at a time."""

    def add_microbatch(carry, microbatch):
        loss_sum, grad_sum = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, x[microbatch], y[microbatch])
        return (loss_sum + loss, gradtx.tree.add(grad_sum, grads)), None

    # The running sum is float32 whatever the params' dtype: k bfloat16 gradients added in bfloat16
    # would lose their low bits.
    zero = (jnp.zeros((), jnp.float32), gradtx.tree.zeros_like(params, jnp.float32))
    (loss_sum, grad_sum), _ = jax.lax.scan(add_microbatch, zero, idx)
    k = idx.shape[0]
    # The mean of k microbatch means is the mean over all k*b examples (equal sizes b): divide by k.
    grads = gradtx.tree.cast_like(gradtx.tree.scale(1.0 / k, grad_sum), params)
    return loss_sum / k, grads


def one_batch_loss_and_grads(params, x: jax.Array, y: jax.Array, idx: jax.Array):
    """Loss and gradient on all examples of `idx` (any shape) at once: the reference."""
    idx = idx.reshape(-1)
    return jax.value_and_grad(loss_fn)(params, x[idx], y[idx])


@partial(jax.jit, static_argnums=(0, 1))
def train_step(loss_and_grads, tx: gradtx.GradientTransformation, params, opt_state, x, y, idx):
    """One optimizer step on the gradient that `loss_and_grads` computes; returns the loss too."""
    loss, grads = loss_and_grads(params, x, y, idx)
    updates, opt_state = tx.update(grads, opt_state, params)
    return gradtx.apply_updates(params, updates), opt_state, loss


@partial(jax.jit, static_argnums=(0, 1))
def first_update(loss_and_grads, tx: gradtx.GradientTransformation, params, x, y, idx):
    """The gradient and the first update of `tx` from `params`, for the check."""
    _, grads = loss_and_grads(params, x, y, idx)
    updates, _ = tx.update(grads, tx.init(params), params)
    return grads, updates


@jax.jit
def evaluate(params, x_train, y_train, x_test, y_test) -> tuple[jax.Array, jax.Array]:
    """Loss on the whole training set and accuracy on the test set."""
    return loss_fn(params, x_train, y_train), jnp.mean(jnp.argmax(predict(params, x_test), axis=1) == y_test)


def max_abs_difference(a, b) -> float:
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def max_abs(a) -> float:
    return max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(a))


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
    for (name, losses), style in zip(curves.items(), ("-", "--", ":"), strict=False):
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses) + 1), smooth, style, label=name, linewidth=2 if style == "-" else 1.5)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"train loss of the step's examples (mean of {window} steps)")
    ax.set_title(
        f"Gradient accumulation, MLP {'-'.join(map(str, SIZES))} on 8x8 digits,"
        f" SGD {LEARNING_RATE:g} with momentum {MOMENTUM:g}"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="optimizer steps per run (default 500)")
    parser.add_argument("--microbatches", "-k", type=int, default=4, help="microbatches per step, k (default 4)")
    parser.add_argument("--microbatch-size", "-b", type=int, default=32, help="examples per microbatch, b (default 32)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/gradient_accumulation.png"),
        help="PNG of the loss curves (default out/gradient_accumulation.png)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and minibatch order")
    args = parser.parse_args(argv)
    for name in ("steps", "microbatches", "microbatch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    k, b = args.microbatches, args.microbatch_size

    x_train, x_test, y_train, y_test = (jnp.asarray(a) for a in load_data())
    params = init_mlp(args.seed)
    batches = minibatches(len(x_train), args.steps, (k, b), args.seed)
    tx = gradtx.sgd(LEARNING_RATE, momentum=MOMENTUM)
    print(f"optimizer = {tx!r}")
    print(
        f"MLP {'-'.join(map(str, SIZES))} (tanh, float32) on 8x8 digits: {len(x_train)} train /"
        f" {len(x_test)} test images, k = {k} microbatches of b = {b}, {jax.default_backend()}\n"
    )

    # 1. The check: the same gradient and update from k microbatches as from one batch of k*b.
    g_acc, u_acc = first_update(accumulated_loss_and_grads, tx, params, x_train, y_train, batches[0])
    g_one, u_one = first_update(one_batch_loss_and_grads, tx, params, x_train, y_train, batches[0])
    grad_diff, update_diff = max_abs_difference(g_acc, g_one), max_abs_difference(u_acc, u_one)
    print(f"check: {k} microbatches of {b} against one batch of {k * b}, from the same params and state")
    print(f"  max |gradient difference| = {grad_diff:.3g}   (largest |gradient| {max_abs(g_one):.3g})")
    print(f"  max |update difference|   = {update_diff:.3g}   (largest |update| {max_abs(u_one):.3g})")
    if grad_diff > RELATIVE_TOLERANCE * max_abs(g_one) or update_diff > RELATIVE_TOLERANCE * max_abs(u_one):
        raise SystemExit(f"accumulated and one-batch updates differ by more than {RELATIVE_TOLERANCE:g} relative")
    print(f"  same up to float32 rounding (relative tolerance {RELATIVE_TOLERANCE:g})\n")

    # 2. Training: the same optimizer and number of steps, three ways of getting each step's gradient.
    runs = [
        (f"accumulate {k} x {b}", accumulated_loss_and_grads, batches),
        (f"one batch of {k * b}", one_batch_loss_and_grads, batches),
        (f"one microbatch of {b}", one_batch_loss_and_grads, batches[:, :1]),  # the first of each step's k
    ]
    curves, rows, trained = {}, [], []
    for name, loss_and_grads, run_batches in runs:
        p, opt_state, losses = params, tx.init(params), []
        for idx in tqdm(run_batches, desc=name, unit="step", leave=False):
            p, opt_state, loss = train_step(loss_and_grads, tx, p, opt_state, x_train, y_train, idx)
            losses.append(loss)
        curves[name] = np.asarray(jnp.stack(losses))
        trained.append(p)
        train_loss, accuracy = evaluate(p, x_train, y_train, x_test, y_test)
        rows.append((name, run_batches[0].size, float(train_loss), float(accuracy)))

    print(f"{'run':<24} {'examples/step':>13} {'train loss':>11} {'test accuracy':>14}")
    for name, examples, train_loss, accuracy in rows:
        print(f"{name:<24} {examples:>13} {train_loss:>11.4f} {accuracy:>14.2%}")
    print(
        f"\nafter {args.steps} steps, max |parameter difference| between the first two runs:"
        f" {max_abs_difference(trained[0], trained[1]):.3g} (largest |parameter| {max_abs(trained[1]):.3g})"
    )
    plot(curves, args.out)
    print(f"\nloss curves: {args.out}")


if __name__ == "__main__":
    main()
