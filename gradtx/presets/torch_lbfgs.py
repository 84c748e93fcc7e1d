"""torch.optim.LBFGS as a gradtx chain (re-exported by `gradtx.presets.torch`).

torch's `step(closure)` runs up to max_iter iterations, evaluating the closure after each; a gradtx
update is one of those iterations (`gradtx.safeguarded_lbfgs`), so a training loop that calls
`tx.update` once per gradient walks torch's iterates one by one, whatever max_iter and max_eval
split them into calls. The strong-Wolfe line search is not taken (see `LBFGS`).
"""

from __future__ import annotations

from gradtx.base import GradientTransformation
from gradtx.checks import OR_NONE, POSITIVE_COUNT, ArgumentValueError, arguments_of, check
from gradtx.combine import chain
from gradtx.transforms.lbfgs import safeguarded_lbfgs

_NAME = "presets.torch.LBFGS"


def LBFGS(
    lr: float = 1,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> GradientTransformation:
    """torch.optim.LBFGS without a line search: one gradtx update is one of its inner iterations.

        y = g_k - g_(k-1),  s = the last step;  the pair kept only if <y, s> > 1e-10 (torch's)
        H_diag = <y, s> / <y, y> of the last kept pair;  d = -H g (two-loop over the last history_size pairs)
        step = -lr min(1, 1 / sum |g|) g  (the very first),   step = lr d  (after)
        no step where max |g| <= tolerance_grad or <g, d> > -tolerance_change

    `chain(safeguarded_lbfgs(lr, history_size, 1e-10, tolerance_grad, tolerance_change))`. max_iter
    and max_eval are checked and change no number: they split torch's iterations into calls of
    `step(closure)` (and torch's other stopping tests, on the step and the loss change, only end a
    call early). `line_search_fn="strong_wolfe"` is refused: torch's own search (cubic
    interpolation, its bracketing and tolerances) is not a gradtx block; `gradtx.lbfgs()` is
    L-BFGS with optax's zoom line search, which meets the same strong-Wolfe conditions with other
    trial steps. Use the update once per gradient of the same loss (no closure is needed).

    >>> from gradtx.presets import torch as pt
    >>> pt.LBFGS(lr=0.5, history_size=10)
    chain(safeguarded_lbfgs(learning_rate=0.5, memory_size=10, min_curvature=1e-10, tolerance_grad=1e-07,
          tolerance_change=1e-09))
    """
    check(_NAME, max_iter=(max_iter, POSITIVE_COUNT), max_eval=(max_eval, POSITIVE_COUNT + OR_NONE))
    if line_search_fn is not None:
        raise ArgumentValueError(
            _NAME, "line_search_fn",
            f"must be None, got {line_search_fn!r}: torch's strong-Wolfe search has no gradtx block with its"
            " numbers; gradtx.lbfgs() is L-BFGS with optax's zoom line search (the same conditions, other trial steps)",
        )  # fmt: skip
    with arguments_of(_NAME, {"learning_rate": "lr", "memory_size": "history_size"}):
        return chain(safeguarded_lbfgs(lr, history_size, 1e-10, tolerance_grad, tolerance_change))


__all__ = ["LBFGS"]
