"""Seven optimizers, each a short chain of gradtx blocks, train the same MLP on 8x8 digits.

One training loop serves every optimizer: `train(tx, ...)` takes any gradient transformation,
runs all steps in one `lax.scan` under `jax.jit` (one compile per optimizer), and returns the
trained parameters and the loss of every step. The script prints each optimizer as the code that
builds it, a table (learning rate, final train loss, test accuracy, steps per second measured after
compilation), and writes a PNG of the loss curves.

    python examples/compare_optimizers.py                       # 1000 steps, out/compare_optimizers.png
    python examples/compare_optimizers.py --steps 300 --out /tmp/curves.png --seed 1

Data: scikit-learn's bundled digits (1797 images of 8x8 pixels, 10 classes), split 80/20 with a
fixed seed, so test accuracies are comparable across runs; `--seed` sets the initial weights and
the minibatch order. Model: 64-64-10 with tanh, float32, minibatches of 128.
"""

from __future__ import annotations

import argparse
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

# (name, learning rate, builder taking the learning rate). Each learning rate was picked by hand
# from a sweep in factors of about 3 (1e-4 ... 1), by final train loss and test accuracy at the
# default 1000 steps and seed 0. adadelta's 1.0 is its default (learning_rate=None).
OPTIMIZERS = [
    ("sgd", 0.3, gradtx.sgd),
    ("momentum", 0.1, partial(gradtx.sgd, momentum=0.9)),
    ("nesterov", 0.1, partial(gradtx.sgd, momentum=0.9, nesterov=True)),
    ("adagrad", 0.1, gradtx.adagrad),
    ("rmsprop", 3e-3, gradtx.rmsprop),
    ("adadelta", 1.0, gradtx.adadelta),
    ("adam", 3e-3, gradtx.adam),
]


# ---------------------------------------------------------------------------------------------------
# Model


def init_mlp(key: jax.Array) -> list[dict[str, jax.Array]]:
    """LeCun-normal weights (variance 1 / fan_in, right for tanh) and zero biases, float32."""
    keys = jax.random.split(key, len(SIZES) - 1)
    return [
        {"w": jax.random.normal(k, (m, n), jnp.float32) * (1.0 / m) ** 0.5, "b": jnp.zeros(n, jnp.float32)}
        for k, m, n in zip(keys, SIZES[:-1], SIZES[1:], strict=True)
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
# The training loop: the same for every optimizer


@partial(jax.jit, static_argnums=0)  # tx is hashable and equal by value: a static argument
def train(tx: gradtx.GradientTransformation, params, x, y, batches):
    """Runs one step of `tx` per row of `batches` (minibatch indices); returns params and losses."""

    def step(carry, idx):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (gradtx.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), batches)
    return params, losses


def accuracy(params, x, y) -> float:
    return float(jnp.mean(jnp.argmax(predict(params, x), axis=1) == y))


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
    for i, (name, losses) in enumerate(curves.items()):
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        style = ("-", "--", ":", "-.")[i % 4]  # curves that coincide stay visible
        ax.plot(np.arange(window, len(losses) + 1), smooth, style, label=name, linewidth=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"train loss (minibatch, mean of {window} steps)")
    ax.set_title(f"8x8 digits, MLP {'-'.join(map(str, SIZES))}, batch {BATCH}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per optimizer (default 1000)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/compare_optimizers.png"),
        help="PNG of the loss curves (default out/compare_optimizers.png)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and minibatch order")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")

    x_train, x_test, y_train, y_test = load_data()
    params = init_mlp(jax.random.key(args.seed))
    batches = minibatches(len(x_train), args.steps, (BATCH,), args.seed)
    print(
        f"MLP {'-'.join(map(str, SIZES))} (tanh, float32) on 8x8 digits: {len(x_train)} train /"
        f" {len(x_test)} test images, {args.steps} steps of minibatch {BATCH}, {jax.default_backend()}\n"
    )

    rows, curves = [], {}
    for name, lr, build in tqdm(OPTIMIZERS, desc="training", unit="optimizer", leave=False):
        tx = build(lr)
        tqdm.write(f"{name:>9} = {tx!r}")
        compiled = train.lower(tx, params, x_train, y_train, batches).compile()
        seconds = []
        for _ in range(3):  # best of three runs of the compiled program
            start = time.perf_counter()
            trained, losses = jax.block_until_ready(compiled(params, x_train, y_train, batches))
            seconds.append(time.perf_counter() - start)
        curves[name] = np.asarray(losses)
        train_loss = float(loss_fn(trained, x_train, y_train))
        rows.append((name, lr, train_loss, accuracy(trained, x_test, y_test), args.steps / min(seconds)))

    print(f"\n{'optimizer':<10} {'learning rate':>13} {'train loss':>11} {'test accuracy':>14} {'steps/s':>9}")
    for name, lr, train_loss, acc, speed in rows:
        print(f"{name:<10} {lr:>13g} {train_loss:>11.4f} {acc:>14.2%} {speed:>9,.0f}")
    plot(curves, args.out)
    print(f"\nloss curves: {args.out}")


if __name__ == "__main__":
    main()
