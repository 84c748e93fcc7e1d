"""64 learning rates of Adam in one compiled program (`gradtx.sweep`), timed against 64 separate runs.

Trains the same MLP on scikit-learn's 8x8 digits with Adam at every learning rate of a log-spaced grid,
three ways, and checks that they agree:

1. `gradtx.sweep`: every configuration in one `jax.jit(jax.vmap(train))`;
2. separate runs, each with its own compiled program (a Python loop over `adam(lr)` with the
   learning rate a constant): `--compiled` of them are timed and the rest extrapolated;
3. separate runs of one compiled program with the learning rate as an argument (the best a loop can do).

It also runs the learning-rate range test (`gradtx.lr_finder`) once and marks its suggestion on the plot.

    python examples/sweep_digits.py                         # 300 steps, 64 rates, out/sweep_digits/
    python examples/sweep_digits.py --steps 100 --rates 16 --out /tmp/sweep --seed 1

Writes `sweep.csv` (learning_rate, final_train_loss, test_accuracy, separate_run_final_loss),
`timings.csv` (method, seconds, compile_seconds, note) and `sweep.png` into the --out folder.

Data: the digits split 80/20 with a fixed seed (examples/digits.py); `--seed` sets the initial weights
and the minibatch order, the same for every learning rate. Model: 64-32-10 with tanh, float32,
minibatches of 64.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from digits import load_data, minibatches
from tqdm import tqdm

import gradtx

SIZES = (64, 32, 10)
BATCH = 64


def init_mlp(seed: int) -> list[dict[str, jax.Array]]:
    """LeCun-normal weights and zero biases, float32 (drawn with NumPy: no compile for a one-time job)."""
    rng = np.random.default_rng(seed)
    return [
        {"w": jnp.asarray(rng.normal(size=(m, n)) / m**0.5, jnp.float32), "b": jnp.zeros(n, jnp.float32)}
        for m, n in itertools.pairwise(SIZES)
    ]


def predict(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params: list[dict[str, jax.Array]], batch: tuple[jax.Array, jax.Array]) -> jax.Array:
    """Mean cross-entropy of the logits against integer labels."""
    x, y = batch
    log_probs = jax.nn.log_softmax(predict(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def one_run(tx: gradtx.GradientTransformation, params: list, batches: tuple) -> jax.Array:
    """The loss at every step of one run of `tx`, in one lax.scan."""

    def step(carry, batch):
        p, state = carry
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        u, state = tx.update(g, state, p)
        return (gradtx.apply_updates(p, u), state), loss

    return jax.lax.scan(step, (params, tx.init(params)), batches)[1]


def timed(f, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(f(*args))
    return out, time.perf_counter() - start


def plot(rates, final, accuracy, suggestion, path: Path, steps: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ok = np.isfinite(final)
    ax_loss.loglog(rates[ok], final[ok], "o-", ms=3, label="gradtx.sweep")
    ax_acc.semilogx(rates, accuracy, "o-", ms=3, color="C1")
    for ax in (ax_loss, ax_acc):
        ax.axvline(suggestion, color="C2", ls="--", label=f"lr_finder's suggestion {suggestion:.2g}")
        ax.set_xlabel("learning rate")
        ax.grid(True, which="both", alpha=0.3)
    ax_loss.set_ylabel(f"train loss after {steps} steps")
    ax_acc.set_ylabel("test accuracy")
    ax_loss.legend()
    ax_loss.set_title(f"Adam on digits: {len(rates)} learning rates in one program")
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (default 300)")
    parser.add_argument("--rates", type=int, default=64, help="learning rates in the sweep (default 64)")
    parser.add_argument("--compiled", type=int, default=2, help="separate runs compiled one by one and timed")
    parser.add_argument("--out", type=Path, default=Path("out/sweep_digits"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and minibatch order")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rates < 2 or not 1 <= args.compiled <= args.rates:
        parser.error("need --steps >= 1, --rates >= 2 and 1 <= --compiled <= --rates")

    x_train, x_test, y_train, y_test = load_data()
    idx = minibatches(len(x_train), args.steps, (BATCH,), args.seed)
    batches = (jnp.asarray(x_train)[idx], jnp.asarray(y_train)[idx])
    params = init_mlp(args.seed)
    rates = np.geomspace(1e-4, 1.0, args.rates).astype(np.float32)
    print(f"MLP {'-'.join(map(str, SIZES))} on digits, {args.steps} steps of {BATCH}: Adam at {args.rates} rates")

    result = gradtx.sweep(
        lambda h: gradtx.adam(h["learning_rate"]), loss_fn, params, {"learning_rate": jnp.asarray(rates)}, batches,
        keep_params=True,
    )  # fmt: skip
    accuracy = np.asarray(
        jax.vmap(lambda p: jnp.mean(jnp.argmax(predict(p, jnp.asarray(x_test)), axis=1) == jnp.asarray(y_test)))(
            result.params
        )
    )

    # Separate runs, each compiled: the learning rate a constant of the program.
    run_static = jax.jit(one_run, static_argnums=0)
    start = time.perf_counter()
    for lr in tqdm(rates[: args.compiled], desc="separate runs, each compiled", unit="run"):
        jax.block_until_ready(run_static(gradtx.adam(float(lr)), params, batches))
    per_run = (time.perf_counter() - start) / args.compiled

    # Separate runs of one program: the learning rate an argument.
    run_traced = jax.jit(lambda lr, p, b: one_run(gradtx.adam(lr), p, b))
    _, compile_s = timed(run_traced, jnp.float32(rates[0]), params, batches)
    start = time.perf_counter()
    separate = np.stack(
        [
            np.asarray(run_traced(jnp.float32(lr), params, batches))
            for lr in tqdm(rates, desc="separate runs", unit="run")
        ]
    )
    loop_s = time.perf_counter() - start

    finder = gradtx.lr_finder(loss_fn, params, gradtx.adam, batches, min_lr=1e-5, max_lr=10.0)

    timings = [
        ("gradtx.sweep", result.compile_s + result.run_s, result.compile_s, "one program for all rates"),
        ("separate runs, one program", compile_s + loop_s, compile_s, "learning rate as an argument"),
        ("separate runs, each compiled", per_run * args.rates, float("nan"), f"extrapolated from {args.compiled}"),
    ]
    print(f"\n{'method':<30} {'seconds':>9}  {'compiling':>9}  note")
    for name, seconds, compiling, note in timings:
        print(f"{name:<30} {seconds:>9.2f}  {compiling:>9.2f}  {note}")
    stable = rates < 0.01
    difference = np.max(np.abs(result.losses[stable] - separate[stable]) / np.abs(separate[stable]))
    print(f"\nsweep against separate runs (rates below 0.01): largest relative difference {difference:.1e}")
    best = result.best()
    print(f"best learning rate {rates[best]:.3g}: train loss {result.final_losses[best]:.4f}, test accuracy"
          f" {accuracy[best]:.2%}; {finder}")  # fmt: skip

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "sweep.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["learning_rate", "final_train_loss", "test_accuracy", "separate_run_final_loss"])
        for row in zip(rates, result.final_losses, accuracy, separate[:, -1], strict=True):
            writer.writerow([f"{row[0]:.6g}", f"{row[1]:.6g}", f"{row[2]:.4f}", f"{row[3]:.6g}"])
    with (args.out / "timings.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seconds", "compile_seconds", "note"])
        writer.writerows([(n, f"{s:.3f}", f"{c:.3f}", note) for n, s, c, note in timings])
    plot(rates, result.final_losses, accuracy, finder.suggestion, args.out / "sweep.png", args.steps)
    print(f"\nwrote {args.out / 'sweep.csv'}, {args.out / 'timings.csv'} and {args.out / 'sweep.png'}")


if __name__ == "__main__":
    main()
