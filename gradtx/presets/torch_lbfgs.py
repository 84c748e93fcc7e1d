"""torch.optim.LBFGS as a gradtx chain (re-exported by `gradtx.presets.torch`).

torch's `step(closure)` runs up to max_iter iterations, evaluating the closure after each; a gradtx
update is one of those iterations (`gradtx.safeguarded_lbfgs`), so a training loop that calls
`tx.update` once per gradient walks torch's iterates one by one. Without a line search, max_iter
and max_eval change no number; with `line_search_fn="strong_wolfe"` they bound the search's
evaluations, and the updates are grouped as torch's calls (see `LBFGS`).
"""

from __future__ import annotations

from gradtx.base import GradientTransformation
from gradtx.checks import OR_NONE, POSITIVE_COUNT, arguments_of, check
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
    """torch.optim.LBFGS: one gradtx update is one of its inner iterations.

        y = g_k - g_(k-1),  s = the last step;  the pair kept only if <y, s> > 1e-10 (torch's)
        H_diag = <y, s> / <y, y> of the last kept pair;  d = -H g (two-loop over the last history_size pairs)
        t_0 = lr min(1, 1 / sum |g|)  (the very first),   t_0 = lr  (after);   step = t d
        t = t_0 (line_search_fn=None),   t = torch's strong-Wolfe search from t_0 ("strong_wolfe")
        no step where max |g| <= tolerance_grad or <g, d> > -tolerance_change

    `chain(safeguarded_lbfgs(lr, history_size, 1e-10, tolerance_grad, tolerance_change,
    line_search_fn, max_iter, max_eval))`. Without a line search max_iter and max_eval are checked
    and change no number: they split torch's iterations into calls of `step(closure)` (torch's other
    stopping tests only end a call early); use the update once per gradient of the same loss (no
    closure is needed). With `line_search_fn="strong_wolfe"` the update evaluates the loss at its
    trial steps: call it as `tx.update(grads, state, params, value=loss, grad=grads,
    value_fn=loss_fn)` (or `gradtx.make_step(tx, loss_fn)`), once per iteration; gradtx groups the
    updates as torch's calls (at most max_iter each, ended where torch's loop breaks), since a
    search may use max_eval minus the call's evaluations so far (default max_eval: max_iter * 5 //
    4, so max_iter=1 tries t_0 alone and keeps it only if the loss does not rise). Where torch's call
    ends, the next update starts a new one, as torch's next `step(closure)` does.

    >>> from gradtx.presets import torch as pt
    >>> pt.LBFGS(lr=0.5, history_size=10)
    chain(safeguarded_lbfgs(learning_rate=0.5, memory_size=10, min_curvature=1e-10, tolerance_grad=1e-07,
          tolerance_change=1e-09))
    """
    check(_NAME, max_iter=(max_iter, POSITIVE_COUNT), max_eval=(max_eval, POSITIVE_COUNT + OR_NONE))
    renames = {"learning_rate": "lr", "memory_size": "history_size", "linesearch": "line_search_fn"}
    with arguments_of(_NAME, renames):
        return chain(
            safeguarded_lbfgs(
                lr, history_size, 1e-10, tolerance_grad, tolerance_change, line_search_fn, max_iter, max_eval
            )
        )


__all__ = ["LBFGS"]
