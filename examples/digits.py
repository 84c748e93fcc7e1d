"""The data the examples train on: scikit-learn's 8x8 digits, split once, and shuffled minibatches.

Shared by the scripts in this folder (each imports it as `digits`, which works when a script is run as
`python examples/<name>.py`: Python puts the script's folder on its path). Run on its own, it says
what the scripts train on: `python examples/digits.py [--seed N]`.
"""

from __future__ import annotations

import argparse

import numpy as np


def load_data() -> tuple[np.ndarray, ...]:
    """x_train, x_test, y_train, y_test: 1437 and 360 images of 64 pixels in [0, 1], int32 labels 0-9."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)  # pixel values 0..16 -> [0, 1], exact in bfloat16 too
    return tuple(train_test_split(x, y.astype(np.int32), test_size=0.2, random_state=0, stratify=y))


def minibatches(n: int, steps: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Indices of shape (steps, *shape) into n examples: epochs of shuffled examples, concatenated."""
    rng = np.random.default_rng(seed)
    per_step = int(np.prod(shape))
    epochs = -(-steps * per_step // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return order[: steps * per_step].reshape(steps, *shape).astype(np.int32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the minibatch order shown (default 0)")
    args = parser.parse_args()
    x_train, x_test, y_train, _ = load_data()
    print(f"train: {x_train.shape[0]} images of {x_train.shape[1]} pixels; test: {x_test.shape[0]}")
    print(f"examples per class (train): {np.bincount(y_train).tolist()}")
    print(f"first minibatch of 8 (seed {args.seed}): {minibatches(len(x_train), 1, (8,), args.seed)[0].tolist()}")


if __name__ == "__main__":
    main()
