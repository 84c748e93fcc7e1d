"""The data the examples train on: scikit-learn's 8x8 digits, split once, and shuffled minibatches.

Shared by the scripts in this folder (each imports it as `digits`, which works when a script is run as
`python examples/<name>.py`: Python puts the script's folder on its path).
"""

from __future__ import annotations

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
