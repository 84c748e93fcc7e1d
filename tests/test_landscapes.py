"""gradtx.landscapes (values by hand, minima, curvature, gradient descent's stability limit) and
gradtx.viz (figures drawn with the Agg backend: axes and line counts, not pixels)."""

from __future__ import annotations

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx import landscapes as L

ALL = [L.quadratic(), L.rosenbrock(), L.beale(), L.saddle(), L.rastrigin(), L.cliff()]


@pytest.mark.parametrize(
    ("landscape", "point", "value"),
    [
        (L.quadratic(), (0.0, 0.0), 1 + 100),
        (L.quadratic(4.0), (2.0, 3.0), 1 + 4 * 4),
        (L.rosenbrock(), (-1.2, 1.0), 2.2**2 + 100 * (1 - 1.44) ** 2),
        (L.beale(), (0.0, 0.0), 1.5**2 + 2.25**2 + 2.625**2),
        (L.saddle(), (0.0, 0.0), 0.5),
        (L.saddle(), (1.0, 2.0), 1 + 4.5),
        (L.rastrigin(), (0.5, 0.5), 20 + 2 * (0.25 + 10)),
        (L.cliff(), (0.0, 0.0), 0.0),
    ],
)
def test_values_by_hand(landscape, point, value):
    assert float(landscape(jnp.asarray(point))) == pytest.approx(value, rel=1e-12, abs=1e-6)


@pytest.mark.parametrize("landscape", ALL, ids=[x.name for x in ALL])
def test_minima_are_stationary_and_grids_evaluate(landscape):
    for m in landscape.minima:
        g = jax.grad(landscape)(jnp.asarray(m))
        # the cliff's smoothed ramp leaves a gradient of 1e-5 at its stated minimum, the origin
        assert float(jnp.max(jnp.abs(g))) < (1e-4 if landscape.name == "cliff" else 1e-9), (landscape.name, m, g)
        assert float(landscape(jnp.asarray(m))) <= float(landscape(jnp.asarray(landscape.start)))
    x, y, z = landscape.grid(11)
    assert x.shape == y.shape == z.shape == (11, 11) and np.isfinite(z).all()
    assert landscape == type(landscape)(**{f: getattr(landscape, f) for f in landscape.__dataclass_fields__})
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        landscape(jnp.zeros(3))


def test_quadratic_curvature_and_the_stability_limit_of_gradient_descent():
    c = 50.0
    quad = L.quadratic(c)
    np.testing.assert_allclose(jax.hessian(quad)(jnp.zeros(2)), np.diag([2.0, 2 * c]))
    # Gradient descent on curvature 2c converges iff eta < 2 / (2c) = 1 / c.
    below = L.trajectory(quad, gradtx.sgd(0.99 / c), 3000)
    above = L.trajectory(quad, gradtx.sgd(1.01 / c), 3000)
    assert np.abs(below[-1] - 1).max() < 1e-6 and np.abs(above[-1] - 1).max() > 1e3


def test_cliff_has_an_exploding_gradient_on_its_face():
    cliff = L.cliff()
    s = jnp.linspace(0, 1, 2001)[:, None]
    line = (1 - s) * jnp.asarray(cliff.start)
    norms = jax.vmap(lambda w: jnp.linalg.norm(jax.grad(cliff)(w)))(line)
    assert float(norms.max()) == pytest.approx(25.0 / 0.5, rel=0.05)  # H / D on the face
    bowl = lambda w: jnp.sum(w**2) / (jnp.sum(w**2) + 4)
    assert float(jax.vmap(lambda w: jnp.linalg.norm(jax.grad(bowl)(w)))(line).max()) < 0.34


def test_trajectory_is_one_compiled_scan_in_the_given_dtype():
    path = L.trajectory(L.rosenbrock(), gradtx.adam(0.02), 2000, dtype=jnp.float32)
    assert path.shape == (2001, 2) and path.dtype == np.float32
    assert np.allclose(path[0], (-1.2, 1.0)) and np.abs(path[-1] - 1).max() < 0.1


# ---------------------------------------------------------------------------------------------------
# viz


@pytest.fixture
def agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_trajectories_on_contours(agg):
    quad = L.quadratic()
    paths = {name: L.trajectory(quad, tx, 100) for name, tx in [("sgd", gradtx.sgd(0.009)), ("adam", gradtx.adam(0.1))]}
    ax = gradtx.viz.trajectories(quad, paths, marker_every=10)
    assert len(ax.get_figure().axes) == 1
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["minimum", "start", "sgd", "adam"]
    np.testing.assert_array_equal(ax.get_lines()[2].get_xydata(), paths["sgd"])
    assert ax.collections  # the contour lines
    with pytest.raises(ValueError, match=r"path 'bad' must have shape \(T, 2\)"):
        gradtx.viz.trajectories(quad, {"bad": np.zeros(3)})


def test_schedules_loss_curves_and_lr_finder_plots(agg):
    fig, axes = agg.subplots(1, 3)
    scheds = {"cosine": gradtx.cosine_decay_schedule(1.0, 50), "exp": gradtx.exponential_decay(1.0, 10, 0.5)}
    gradtx.viz.schedules(scheds, 50, ax=axes[0])
    lines = axes[0].get_lines()
    assert len(lines) == 2 and lines[1].get_ydata()[10] == pytest.approx(0.5)
    gradtx.viz.loss_curves({"adam": np.ones((3, 20)), "sgd": np.r_[np.ones(5), np.nan]}, ax=axes[1], labels=[1, 2, 3])
    assert len(axes[1].get_lines()) == 4 and axes[1].get_yscale() == "log"
    r = gradtx.lr_finder(lambda w: jnp.sum(w**2), jnp.ones(2), gradtx.sgd, steps=40, min_lr=1e-2, smoothing=0.0)
    ax = r.plot(axes[2])
    assert ax is axes[2] and len(ax.get_lines()) == 4 and ax.get_xscale() == "log"  # raw, smoothed, 2 markers
    assert len(fig.axes) == 3


def test_viz_needs_matplotlib_only_when_drawing(monkeypatch):
    code = "import gradtx, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install gradtx\[viz\]"):
        gradtx.viz.loss_curves({"a": [1.0, 0.5]})
    assert math.isfinite(float(L.saddle()(jnp.zeros(2))))
