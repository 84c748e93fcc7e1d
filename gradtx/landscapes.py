"""Test functions: the 2-D losses the lecture draws optimizers on, each with its minima and a start.

    quadratic(c)   (w1 - 1)^2 + c (w2 - 1)^2           curvatures 2 and 2c; the lecture's c = 100
    rosenbrock()   (1 - w1)^2 + 100 (w2 - w1^2)^2      a curved valley; minimum (1, 1)
    beale()        (1.5 - x + x y)^2 + (2.25 - x + x y^2)^2 + (2.625 - x + x y^3)^2;  minimum (3, 0.5)
    saddle()       w1^2 + (w2^2 - 1)^2 / 2             a saddle at 0; minima (0, -1), (0, 1)
    rastrigin()    20 + sum_i (w_i^2 - 10 cos(2 pi w_i))  many local minima; minimum 0 at 0
    cliff()        r^2 / (r^2 + 4) + (H / D) ramp(n . w - c)   a bowl cut by a cliff (exploding gradients)

Each is a `Landscape`: call it on `w` of shape (..., 2) (one point, or a grid for a contour plot);
`minima`, `start` (a classic starting point) and `bounds` (for plots) come with it. `trajectory`
runs an optimizer on one in a single jitted `lax.scan`; `gradtx.viz.trajectories` draws the paths.
Constants are Python numbers, so a float64 point stays float64 and a float32 one float32.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import apply_updates
from gradtx.checks import check

__all__ = ["Landscape", "beale", "cliff", "quadratic", "rastrigin", "rosenbrock", "saddle", "trajectory"]


@dataclasses.dataclass(frozen=True)
class Landscape:
    """A 2-D loss: `landscape(w)` for w of shape (..., 2); equal and hashable by value (a static
    argument of `jax.jit`)."""

    name: str
    formula: str
    fn: Callable[..., Any]  # module-level fn(w1, w2, **kwargs)
    kwargs: tuple[tuple[str, float], ...]
    minima: tuple[tuple[float, float], ...]
    start: tuple[float, float]
    bounds: tuple[tuple[float, float], tuple[float, float]]
    log_scale: bool = True  # contours on a log scale (the loss spans decades)

    def __call__(self, w: Any) -> jax.Array:
        w = jnp.asarray(w)
        if w.shape[-1:] != (2,):
            raise ValueError(f"landscapes.{self.name}: w must have shape (..., 2), got {w.shape}")
        return self.fn(w[..., 0], w[..., 1], **dict(self.kwargs))

    @property
    def minimum(self) -> float:
        """The loss at the (global) minima."""
        return float(self(np.asarray(self.minima[0], np.float64)))

    def grid(self, n: int = 201) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, loss) on an n x n grid over `bounds`, for `contour`."""
        (x0, x1), (y0, y1) = self.bounds
        x, y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
        return x, y, np.asarray(jax.jit(self)(np.stack([x, y], axis=-1)))


def _quadratic(w1, w2, condition):
    return (w1 - 1) ** 2 + condition * (w2 - 1) ** 2


def quadratic(condition: float = 100.0) -> Landscape:
    """The lecture's ill-conditioned quadratic: curvature 2 along w1, 2 c along w2.

        L(w) = (w1 - 1)^2 + c (w2 - 1)^2,    Hessian diag(2, 2c),  condition number c

    Minimum 0 at (1, 1). Gradient descent with learning rate eta converges iff eta < 2 / (2c) = 1 / c
    (for c >= 1), fastest along w2 at eta = 1 / (2c).

    >>> import gradtx
    >>> float(gradtx.landscapes.quadratic(100.0)([0.0, 0.0]))
    101.0
    """
    check("landscapes.quadratic", condition=(condition, "(0, inf)"))
    return Landscape(
        "quadratic", f"(w1 - 1)^2 + {condition:g} (w2 - 1)^2", _quadratic, (("condition", condition),),
        ((1.0, 1.0),), (-2.0, 0.2), ((-2.5, 2.0), (-0.2, 2.2)),
    )  # fmt: skip


def _rosenbrock(w1, w2, a, b):
    return (a - w1) ** 2 + b * (w2 - w1**2) ** 2


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    """Rosenbrock's curved valley (1960): easy to find, hard to follow.

    L(w) = (a - w1)^2 + b (w2 - w1^2)^2,    minimum 0 at (a, a^2), started at (-1.2, 1)
    """
    check("landscapes.rosenbrock", b=(b, "(0, inf)"))
    return Landscape(
        "rosenbrock", f"({a:g} - w1)^2 + {b:g} (w2 - w1^2)^2", _rosenbrock, (("a", a), ("b", b)),
        ((a, a * a),), (-1.2, 1.0), ((-2.0, 2.0), (-1.0, 3.0)),
    )  # fmt: skip


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def beale() -> Landscape:
    """Beale's function: flat plateaus and sharp ridges around a single minimum.

    L(x, y) = (1.5 - x + x y)^2 + (2.25 - x + x y^2)^2 + (2.625 - x + x y^3)^2,   minimum 0 at (3, 0.5)
    """
    return Landscape(
        "beale", "(1.5 - x + x y)^2 + (2.25 - x + x y^2)^2 + (2.625 - x + x y^3)^2", _beale, (),
        ((3.0, 0.5),), (1.0, 1.4), ((-1.0, 4.5), (-1.5, 2.0)),
    )  # fmt: skip


def _saddle(w1, w2):
    return w1**2 + 0.5 * (w2**2 - 1) ** 2


def saddle() -> Landscape:
    """A saddle point at the origin, bounded below by a quartic term.

        L(w) = w1^2 + (w2^2 - 1)^2 / 2 = 1/2 + w1^2 - w2^2 + w2^4 / 2

    Near 0 it is the saddle w1^2 - w2^2 (plus 1/2); minima 0 at (0, -1) and (0, 1). Started at
    (1.5, 1e-3), almost on the attracting axis w2 = 0: gradient descent slows down near the saddle.
    """
    return Landscape(
        "saddle", "w1^2 + (w2^2 - 1)^2 / 2", _saddle, (), ((0.0, -1.0), (0.0, 1.0)), (1.5, 1e-3),
        ((-1.0, 2.0), (-1.6, 1.6)),
    )  # fmt: skip


def _rastrigin(w1, w2, amplitude):
    tau = 2 * math.pi
    return 2 * amplitude + (w1**2 - amplitude * jnp.cos(tau * w1)) + (w2**2 - amplitude * jnp.cos(tau * w2))


def rastrigin(amplitude: float = 10.0) -> Landscape:
    """Rastrigin's function: a bowl covered with local minima one unit apart.

    L(w) = 2 A + sum_i (w_i^2 - A cos(2 pi w_i)),    A = amplitude;  minimum 0 at (0, 0)
    """
    check("landscapes.rastrigin", amplitude=(amplitude, "[0, inf)"))
    return Landscape(
        "rastrigin", f"{2 * amplitude:g} + sum_i (w_i^2 - {amplitude:g} cos(2 pi w_i))", _rastrigin,
        (("amplitude", amplitude),), ((0.0, 0.0),), (2.6, 1.7), ((-3.5, 3.5), (-3.5, 3.5)), log_scale=False,
    )  # fmt: skip


def _cliff(w1, w2, height, width, nx, ny, offset, sharpness):
    r2 = w1**2 + w2**2
    z = nx * w1 + ny * w2 - offset  # signed distance to the middle of the cliff face
    ramp = (jax.nn.softplus(sharpness * (z + width / 2)) - jax.nn.softplus(sharpness * (z - width / 2))) / sharpness
    return r2 / (r2 + 4) + height / width * ramp


def cliff(
    height: float = 25.0, width: float = 0.5, angle: float = 20.0, offset: float = 1.0, sharpness: float = 20.0
) -> Landscape:
    """A bowl cut by a cliff: on the cliff's face the gradient is height / width, 150 times the
    bowl's largest (the lecture's exploding gradients; Goodfellow et al., Sec. 8.2.4).

        L(w) = r^2 / (r^2 + 4) + (H / D) ramp(n . w - c),   r^2 = w1^2 + w2^2

    ramp rises from 0 to D = `width` across the face |n . w - c| < D / 2 (corners smoothed by
    softplus of `sharpness`); n = (cos angle, sin angle); H = `height`. Minimum about 0 at the origin
    (the smoothed corner of the ramp adds 1e-6 there, and a gradient of 1e-5);
    the bowl flattens to a plateau far away, where a step thrown off the cliff lands. Started at
    (2.5, 1.5) on the high side (notebooks/03_clipping.ipynb).
    """
    check("landscapes.cliff", height=(height, "[0, inf)"), width=(width, "(0, inf)"), sharpness=(sharpness, "(0, inf)"))
    nx, ny = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    kwargs = dict(height=height, width=width, nx=nx, ny=ny, offset=offset, sharpness=sharpness)
    return Landscape(
        "cliff", f"r^2 / (r^2 + 4) + {height / width:g} ramp(n . w - {offset:g})", _cliff, tuple(kwargs.items()),
        ((0.0, 0.0),), (2.5, 1.5), ((-3.0, 4.0), (-3.0, 4.0)),
    )  # fmt: skip


@functools.partial(jax.jit, static_argnames=("landscape", "tx", "steps"))
def _trajectory(landscape: Landscape, tx: Any, steps: int, w0: jax.Array) -> jax.Array:
    def step(carry: Any, _: Any) -> Any:
        w, state = carry
        updates, state = tx.update(jax.grad(landscape)(w), state, w)
        w = apply_updates(w, updates)
        return (w, state), w

    _, path = jax.lax.scan(step, (w0, tx.init(w0)), length=steps)
    return jnp.concatenate([w0[None], path])


def trajectory(landscape: Landscape, tx: Any, steps: int, start: Any = None, dtype: Any = None) -> np.ndarray:
    """The points w_0, ..., w_steps of `tx` on `landscape` from `start` (default: its own), shape
    (steps + 1, 2), computed in one jitted `lax.scan`, in `dtype` (None: JAX's default float).

    >>> import gradtx
    >>> path = gradtx.landscapes.trajectory(gradtx.landscapes.quadratic(), gradtx.sgd(0.009), 500)
    >>> path.shape, bool(abs(path[-1] - 1).max() < 1e-2)
    ((501, 2), True)
    """
    check("landscapes.trajectory", steps=(steps, "[0, inf)"))
    w0 = jnp.asarray(landscape.start if start is None else start, dtype or jnp.zeros(()).dtype)
    return np.asarray(_trajectory(landscape, tx, int(steps), w0))
