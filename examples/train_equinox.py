"""Train an equinox MLP on 8x8 digits with a gradtx optimizer and a learning-rate schedule.

equinox's filtered loop with a gradtx optimizer in place of an optax one:

    opt_state = tx.init(eqx.filter(model, eqx.is_array))       # state for the array leaves only
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)      # grads: None where not an array
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)

all inside one `eqx.filter_jit` step. The non-array parts of the model (the activation function,
sizes) have `None` gradients, which every gradtx transformation passes through. The optimizer is
Adam whose learning rate follows `gradtx.warmup_cosine_decay_schedule` (a linear warmup over the
first 10% of the steps, then half a cosine down to 0), as in examples/train_flax.py.

The script prints the optimizer as the code that builds it, then the loss on the whole training set
and the test accuracy five times during training, and writes a PNG of the loss curve next to the
learning rate of every step. One compiled step per minibatch, in a Python loop with a progress bar.

    python examples/train_equinox.py                           # 1000 steps, out/train_equinox.png
    python examples/train_equinox.py --steps 300 --out /tmp/eqx.png --seed 1

Data: scikit-learn's bundled digits (1797 images of 8x8 pixels, 10 classes), split 80/20 with a
fixed seed; `--seed` sets the initial weights and the minibatch order. Model: `eqx.nn.MLP`
64-128-10 with ReLU, float32, minibatches of 128.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from digits import load_data, minibatches
from tqdm import tqdm

import gradtx

SIZES = (64, 128, 10)  # input pixels, hidden units, classes
BATCH = 128
PEAK_LR = 1e-2  # Adam's learning rate at the end of the warmup
EVALUATIONS = 5  # how many times the loss and accuracy are printed during training


# ---------------------------------------------------------------------------------------------------
# Model


def make_model(key: jax.Array) -> eqx.nn.MLP:
    return eqx.nn.MLP(SIZES[0], SIZES[2], width_size=SIZES[1], depth=1, activation=jax.nn.relu, key=key)


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean cross-entropy of the logits against integer labels."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def loss_fn(model: eqx.nn.MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    return cross_entropy(jax.vmap(model)(x), y)  # equinox layers take one example: vmap over the batch


# ---------------------------------------------------------------------------------------------------
# Training and evaluation steps


@eqx.filter_jit
def make_step(
    model: eqx.nn.MLP,
    opt_state: gradtx.OptState,
    tx: gradtx.GradientTransformation,
    x: jax.Array,
    y: jax.Array,
    idx: jax.Array,
) -> tuple[eqx.nn.MLP, gradtx.OptState, jax.Array]:
    """One step of `tx` on the minibatch `x[idx], y[idx]`; returns the new model, state and the loss.

    `tx` holds no arrays, so filter_jit treats it as static: it is equal and hashable by value, and
    the step compiles once.
    """
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x[idx], y[idx])
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss


@eqx.filter_jit
def evaluate(model: eqx.nn.MLP, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Loss and accuracy on the whole of `x, y`."""
    logits = jax.vmap(model)(x)
    return cross_entropy(logits, y), jnp.mean(jnp.argmax(logits, axis=1) == y)


# ---------------------------------------------------------------------------------------------------
# Data, plot, main


def plot(losses: np.ndarray, evals: list[tuple[int, float, float]], lrs: np.ndarray, path: Path) -> None:
    """Minibatch losses with their moving average and the full training loss; the learning rate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no GUI: the Agg backend
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax_lr = fig.subplots(1, 2, width_ratios=(2, 1))
    steps = np.arange(1, len(losses) + 1)
    window = min(20, len(losses))
    ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="minibatch loss")
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"minibatch loss, mean of {window} steps")
    eval_steps, eval_losses, _ = zip(*evals, strict=True)
    ax.plot(eval_steps, eval_losses, "o", color="tab:red", label="loss on the whole training set")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(f"equinox MLP {'-'.join(map(str, SIZES))} on 8x8 digits, batch {BATCH}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax_lr.plot(steps, lrs, color="tab:green")  # step k (from 1) uses schedule(k - 1)
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("warmup_cosine_decay_schedule")
    ax_lr.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/train_equinox.png"),
        help="PNG of the loss curve (default out/train_equinox.png)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and minibatch order")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error(f"--steps must be at least 2 (one warmup step, one decay step), got {args.steps}")

    x_train, x_test, y_train, y_test = (jnp.asarray(a) for a in load_data())
    batches = minibatches(len(x_train), args.steps, (BATCH,), args.seed)

    schedule = gradtx.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=PEAK_LR, warmup_steps=max(1, args.steps // 10), decay_steps=args.steps
    )
    tx = gradtx.adam(schedule)
    model = make_model(jax.random.key(args.seed))
    opt_state = tx.init(eqx.filter(model, eqx.is_array))
    print(f"optimizer = {tx!r}")
    print(
        f"equinox MLP {'-'.join(map(str, SIZES))} (ReLU, float32) on 8x8 digits: {len(x_train)} train /"
        f" {len(x_test)} test images, {args.steps} steps of minibatch {BATCH}, {jax.default_backend()}\n"
    )

    eval_every = max(1, args.steps // EVALUATIONS)
    losses, evals = [], []
    with tqdm(total=args.steps, desc="train", unit="step") as bar:
        for step, idx in enumerate(batches, start=1):
            model, opt_state, loss = make_step(model, opt_state, tx, x_train, y_train, idx)
            losses.append(loss)
            if step % eval_every == 0 or step == args.steps:
                train_loss, _ = evaluate(model, x_train, y_train)
                _, test_acc = evaluate(model, x_test, y_test)
                evals.append((step, float(train_loss), float(test_acc)))
                bar.set_postfix(loss=f"{float(train_loss):.4f}")
                tqdm.write(f"step {step:>5}  train loss {train_loss:.4f}  test accuracy {test_acc:.2%}")
            bar.update()

    _, final_loss, final_acc = evals[-1]
    print(f"\nfinal: train loss {final_loss:.4f}, test accuracy {final_acc:.2%}")
    lrs = jax.jit(schedule)(jnp.arange(args.steps))  # jitted: one compile, not one per operation
    plot(np.asarray(jnp.stack(losses)), evals, np.asarray(lrs), args.out)
    print(f"loss curve: {args.out}")


if __name__ == "__main__":
    main()
