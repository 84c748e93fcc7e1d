"""Other frameworks' optimizers, exactly: their names, their defaults, their numbers.

    gradtx.presets.torch    torch.optim's optimizers (Adam, AdamW, SGD, RMSprop, ...) and
                            state_from_torch / state_to_torch, which move a state_dict() both ways
    gradtx.presets.keras    Keras 3's optimizers (Adam, AdamW, Nadam, Lion, Lamb, ...)

A preset is named as the framework's class and takes its constructor's arguments with its names and
defaults (`gradtx.presets.torch.RMSprop(lr=1e-2, alpha=0.99)`, `gradtx.presets.keras.RMSprop(
learning_rate=1e-3, rho=0.9)`); it returns a plain gradtx `chain` whose updates equal that
framework's steps (the tests hold them to torch.optim's and Keras's trajectories in float64).
Where the frameworks and optax differ by default, and why: presets/README.md.

`from gradtx.presets import torch` shadows the torch package in that namespace: write
`from gradtx.presets import torch as pt` next to `import torch`.
"""

from gradtx.presets import keras, torch

__all__ = ["keras", "torch"]
