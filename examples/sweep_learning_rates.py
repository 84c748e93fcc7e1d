"""Sweep learning rates with `jax.vmap`: one compiled program per optimizer trains every rate at once.

A gradtx hyperparameter may be a traced value, so `gradtx.adam(lr)` can be built inside a function
that `jax.vmap` maps over an array of learning rates. For each optimizer (a Python loop) the script
compiles one program, `jit(vmap(train))`, that trains the same initial MLP with every learning rate
in one `lax.scan`; it prints the compile and run times, writes the final losses to a CSV and plots
the final loss against the learning rate, one line per optimizer.

    python examples/sweep_learning_rates.py                    # 500 steps, out/sweep_learning_rates/
    python examples/sweep_learning_rates.py --steps 200 --out /tmp/sweep --seed 1

Writes `final_losses.csv` (optimizer, learning_rate, train_loss, test_accuracy) and
`final_losses.png` into the --out folder. A learning rate that diverges gives a NaN or infinite
loss: it is written as such to the CSV and drawn as an x at the top of the plot.

Data: scikit-learn's bundled digits (1797 images of 8x8 pixels, 10 classes), split 80/20 with a
fixed seed; `--seed` sets the initial weights (the same for every run) and the minibatch order.
Model: 64-64-10 with tanh, float32, minibatches of 128.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from digits import load_data, minibatches
from tqdm import tqdm

import gradtx

SIZES = (64, 64, 10)  # input pixels, hidden units, classes
BATCH = 128
LEARNING_RATES = np.logspace(-4, 1, 16, dtype=np.float32)  # 1e-4 ... 10, three per decade

# (name, builder taking the learning rate): each is called with a traced learning rate under vmap.
OPTIMIZERS = [
    ("sgd", gradtx.sgd),
    ("momentum", partial(gradtx.sgd, momentum=0.9)),
    ("adagrad", gradtx.adagrad),
    ("rmsprop", gradtx.rmsprop),
    ("adam", gradtx.adam),
]


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
# Training one run, and the sweep over learning rates


def train_and_evaluate(tx: gradtx.GradientTransformation, params, data, batches) -> tuple[jax.Array, jax.Array]:
    """Trains with `tx`, one step per row of `batches`; returns the train loss and test accuracy."""
    x_train, y_train, x_test, y_test = data

    def step(carry, idx):
        params, opt_state = carry
        grads = jax.grad(loss_fn)(params, x_train[idx], y_train[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (gradtx.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), batches)
    accuracy = jnp.mean(jnp.argmax(predict(params, x_test), axis=1) == y_test)
    return loss_fn(params, x_train, y_train), accuracy


def sweep(build, learning_rates, params, data, batches):
    """`train_and_evaluate(build(lr), ...)` for every lr, as one program: vmap over the learning rate only."""
    return jax.vmap(lambda lr: train_and_evaluate(build(lr), params, data, batches))(learning_rates)


# ---------------------------------------------------------------------------------------------------
# Data, output, main


def write_csv(results: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["optimizer", "learning_rate", "train_loss", "test_accuracy"])
        for name, (losses, accuracies) in results.items():
            for lr, loss, acc in zip(LEARNING_RATES, losses, accuracies, strict=True):
                writer.writerow([name, f"{lr:.4g}", f"{loss:.6g}", f"{acc:.4f}"])


def plot(results: dict[str, tuple[np.ndarray, np.ndarray]], initial_loss: float, steps: int, path: Path) -> None:
    """Final train loss against learning rate, log-log; diverged runs as x at the top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no GUI: the Agg backend
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = 3 * initial_loss  # the plot's ceiling: losses above it (or NaN) count as diverged
    for i, (name, (losses, _)) in enumerate(results.items()):
        color, marker = f"C{i}", "osD^v"[i % 5]
        ok = np.isfinite(losses) & (losses < top)
        ax.plot(LEARNING_RATES[ok], losses[ok], "-", marker=marker, color=color, label=name, markersize=4)
        # Staggered a little per optimizer, so that coinciding x stay visible.
        ax.plot(LEARNING_RATES[~ok], np.full((~ok).sum(), top * 1.06**i), "x", color=color, markersize=8)
    ax.axhline(initial_loss, color="gray", linestyle=":", label=f"initial loss ({initial_loss:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(top=top * 1.06 ** len(results) * 1.1)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("train loss after the last step")
    ax.set_title(f"MLP {'-'.join(map(str, SIZES))} on 8x8 digits, {steps} steps of batch {BATCH} (x: diverged)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="training steps per run (default 500)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/sweep_learning_rates"),
        help="folder for final_losses.csv and final_losses.png (default out/sweep_learning_rates)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and minibatch order")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")

    x_train, x_test, y_train, y_test = load_data()
    data = (x_train, y_train, x_test, y_test)
    params = init_mlp(args.seed)
    batches = minibatches(len(x_train), args.steps, (BATCH,), args.seed)
    lrs = jnp.asarray(LEARNING_RATES)
    print(
        f"MLP {'-'.join(map(str, SIZES))} (tanh, float32) on 8x8 digits, {args.steps} steps of minibatch"
        f" {BATCH}: {len(LEARNING_RATES)} learning rates from {LEARNING_RATES[0]:g} to {LEARNING_RATES[-1]:g},"
        f" {len(OPTIMIZERS)} optimizers, {jax.default_backend()}\n"
    )

    results = {}
    for name, build in tqdm(OPTIMIZERS, desc="optimizers", unit="optimizer"):
        start = time.perf_counter()
        # jit(vmap(...)) of a function made for this optimizer: one compile per optimizer, whatever
        # the number of learning rates.
        compiled = jax.jit(partial(sweep, build)).lower(lrs, params, data, batches).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        losses, accuracies = jax.block_until_ready(compiled(lrs, params, data, batches))
        run_s = time.perf_counter() - start
        results[name] = (np.asarray(losses), np.asarray(accuracies))
        best = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.nan)))
        tqdm.write(
            f"{name:>9}: compiled once in {compile_s:.2f} s, {len(LEARNING_RATES)} runs in {run_s:.2f} s;"
            f" best learning rate {LEARNING_RATES[best]:.3g} (train loss {losses[best]:.4f},"
            f" test accuracy {accuracies[best]:.2%})"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = args.out / "final_losses.csv", args.out / "final_losses.png"
    write_csv(results, csv_path)
    plot(results, float(jax.jit(loss_fn)(params, x_train, y_train)), args.steps, png_path)
    print(f"\nfinal losses: {csv_path}\nplot: {png_path}")


if __name__ == "__main__":
    main()
