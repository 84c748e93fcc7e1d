"""python -m benchmarks.memory: compact optimizer state, side by side with bitsandbytes and torchao.

    python -m benchmarks.memory            # 4M params, 200 convergence steps: a few minutes on 2 cores
    python -m benchmarks.memory --quick    # tiny sizes: a check that everything runs (< 1 minute)

Three tables, one run, written to benchmarks/results/memory-<host>-<date>[-quick].json:

1. State bytes per parameter of adam, adamw, lion and ademamix (optax.contrib's, wrapped: gradtx
   has none yet) with float32 moments, every moment in bfloat16 (`state_dtype`), 8-bit, 4-bit and
   fp8 (`quantized_state`), next to bitsandbytes' 8-bit and torchao's 8-bit, 4-bit and fp8
   optimizers on a tensor of the same size (all leaves of rank >= 1 counted, scales included).
2. Step time (median of interleaved rounds, as benchmarks/measure.py) of each Adam against gradtx's
   float32 Adam, and of torch.optim's AdamW, bitsandbytes' AdamW8bit and torchao's AdamW8bit on CPU;
   XLA's temporary bytes of each jitted step (`memory_analysis()`).
3. Convergence: an MLP on scikit-learn's digits trained with float32 Adam, 8-bit, 4-bit, fp8, and
   with bfloat16 params plain, with stochastic rounding and with Kahan summation; final training
   loss and its ratio to float32 Adam's.

Timings on a shared machine are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import FULL, QUICK, Config, run_case

OUT = Path(__file__).resolve().parent / "results"


def gradtx_variants(gradtx: Any, jnp: Any, base: Any) -> dict[str, Any]:
    return {
        "float32": base,
        "bf16 moments": gradtx.state_dtype(base, jnp.bfloat16),
        "8-bit": gradtx.quantized_state(base, bits=8),
        "4-bit": gradtx.quantized_state(base, bits=4),
        "fp8": gradtx.quantized_state(base, fp8=True),
    }


def state_bytes(tree: Any) -> int:
    import jax

    return sum(x.nbytes for x in jax.tree.leaves(tree) if getattr(x, "ndim", 0) > 0)


def torch_state_bytes(opt: Any) -> int:
    total = 0
    for state in opt.state.values():
        for value in state.values():
            if hasattr(value, "codes"):  # torchao's quantized tensors
                total += value.codes.nbytes + value.scale.nbytes
            elif hasattr(value, "nbytes") and value.ndim > 0:
                total += value.nbytes
    return total


def quiet_import(name: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return __import__(name, fromlist=["_"])
        except ImportError:
            return None


def bytes_table(n: int) -> list[dict[str, Any]]:
    import jax
    import jax.numpy as jnp
    import optax

    import gradtx

    params = {"w": jnp.zeros((n // 1024, 1024), jnp.float32)}
    bases = {
        "adam": gradtx.adam(1e-3),
        "adamw": gradtx.adamw(1e-3),
        "lion": gradtx.lion(1e-4),
        "ademamix (optax)": optax.contrib.ademamix(1e-3),
    }
    rows = []
    for name, base in bases.items():
        for variant, tx in gradtx_variants(gradtx, jnp, base).items():
            with jax.numpy_dtype_promotion("standard"):
                rows.append(
                    {"optimizer": name, "impl": f"gradtx {variant}", "B/param": state_bytes(tx.init(params)) / n}
                )
    torch = quiet_import("torch")
    bnb = quiet_import("bitsandbytes.optim")
    ao = quiet_import("torchao.optim")
    if torch is not None:
        references = []
        if bnb is not None:
            references += [
                ("adam", "bitsandbytes Adam8bit", bnb.Adam8bit),
                ("adamw", "bitsandbytes AdamW8bit", bnb.AdamW8bit),
            ]
            references += [
                ("lion", "bitsandbytes Lion8bit", bnb.Lion8bit),
                ("ademamix (optax)", "bitsandbytes AdEMAMix8bit", bnb.AdEMAMix8bit),
            ]
        if ao is not None:
            references += [("adamw", "torchao AdamW8bit", ao.AdamW8bit), ("adamw", "torchao AdamW4bit", ao.AdamW4bit)]
            references += [("adamw", "torchao AdamWFp8", ao.AdamWFp8)]
        for name, impl, make in references:
            p = torch.nn.Parameter(torch.zeros(n // 1024, 1024))
            opt = make([p], lr=1e-4)
            p.grad = torch.ones_like(p) * 1e-3
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt.step()
            rows.append({"optimizer": name, "impl": impl, "B/param": torch_state_bytes(opt) / n})
    return rows


class JaxRunner:
    kind, on_host = "optimizer", True

    def __init__(self, impl: str, tx: Any, n: int) -> None:
        import jax
        import jax.numpy as jnp

        import gradtx

        self.impl = impl
        self.params = jnp.full((n // 1024, 1024), 0.5, jnp.float32)
        self.grads = jnp.full((n // 1024, 1024), 1e-3, jnp.float32)
        self.state = tx.init(self.params)

        def step(p: Any, s: Any, g: Any) -> Any:
            u, s = tx.update(g, s, p)
            return gradtx.apply_updates(p, u), s

        self.compiled = jax.jit(step, donate_argnums=(0, 1)).lower(self.params, self.state, self.grads).compile()
        self.temp = self.compiled.memory_analysis().temp_size_in_bytes

    def run(self, steps: int) -> None:
        import jax

        for _ in range(steps):
            self.params, self.state = self.compiled(self.params, self.state, self.grads)
        jax.block_until_ready(self.params)


class TorchRunner:
    kind, on_host = "optimizer", True

    def __init__(self, impl: str, make: Any, n: int) -> None:
        import torch

        self.impl, self.temp = impl, None
        self.p = torch.nn.Parameter(torch.full((n // 1024, 1024), 0.5))
        self.p.grad = torch.full_like(self.p, 1e-3)
        self.opt = make([self.p])

    def run(self, steps: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(steps):
                self.opt.step()


def time_table(n: int, config: Config) -> list[dict[str, Any]]:
    import jax.numpy as jnp

    import gradtx

    runners: list[Any] = [
        JaxRunner(f"gradtx {v}", tx, n) for v, tx in gradtx_variants(gradtx, jnp, gradtx.adamw(1e-4)).items()
    ]
    torch = quiet_import("torch")
    if torch is not None:
        runners.append(TorchRunner("torch AdamW (foreach)", lambda ps: torch.optim.AdamW(ps, lr=1e-4), n))
        bnb, ao = quiet_import("bitsandbytes.optim"), quiet_import("torchao.optim")
        if bnb is not None:
            runners.append(TorchRunner("bitsandbytes AdamW8bit", lambda ps: bnb.AdamW8bit(ps, lr=1e-4), n))
        if ao is not None:
            runners.append(TorchRunner("torchao AdamW8bit", lambda ps: ao.AdamW8bit(ps, lr=1e-4), n))
    for r in runners:
        r.run(2)  # warm up (torch.compile in torchao, state allocation in torch)
    timings = run_case(runners, config, random.Random(0))
    base = timings["gradtx float32"]["median_s"]
    return [
        {
            "impl": r.impl,
            "median ms": 1e3 * timings[r.impl]["median_s"],
            "x gradtx float32": timings[r.impl]["median_s"] / base,
            "XLA temp B/param": None if r.temp is None else r.temp / n,
        }
        for r in runners
    ]


def convergence_table(steps: int) -> list[dict[str, Any]]:
    import jax
    import jax.numpy as jnp
    from sklearn.datasets import load_digits

    import gradtx

    x, y = load_digits(return_X_y=True)
    x, y = jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y, jnp.int32)
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(64, 256)) / 8, rng.normal(size=(256, 10)) / 16
    batches = jnp.asarray(rng.integers(0, x.shape[0], size=(steps, 128)), jnp.int32)

    def loss(p: Any, xb: Any, yb: Any) -> Any:
        h = jax.nn.relu(xb.astype(p["w1"].dtype) @ p["w1"] + p["b1"])
        logits = (h @ p["w2"] + p["b2"]).astype(jnp.float32)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], 1))

    def train(tx: Any, dtype: Any) -> float:
        p = {
            "w1": jnp.asarray(w1, dtype),
            "b1": jnp.zeros(256, dtype),
            "w2": jnp.asarray(w2, dtype),
            "b2": jnp.zeros(10, dtype),
        }

        def body(carry: Any, idx: Any) -> Any:
            p, s = carry
            value, g = jax.value_and_grad(loss)(p, x[idx], y[idx])
            u, s = tx.update(g, s, p)
            return (gradtx.apply_updates(p, u), s), value

        _, values = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), batches))(p)
        return float(jnp.mean(values[-20:]))  # the last 20 steps' mean training loss

    lr = 1e-3
    runs = {
        "float32 Adam": (gradtx.adam(lr), jnp.float32),
        "8-bit": (gradtx.quantized_state(gradtx.adam(lr), bits=8, min_size=0), jnp.float32),
        "4-bit": (gradtx.quantized_state(gradtx.adam(lr), bits=4, min_size=0), jnp.float32),
        "fp8": (gradtx.quantized_state(gradtx.adam(lr), fp8=True, min_size=0), jnp.float32),
        "bf16 params": (gradtx.adam(lr), jnp.bfloat16),
        "bf16 params + stochastic rounding": (gradtx.stochastic_rounding(gradtx.adam(lr)), jnp.bfloat16),
        "bf16 params + Kahan": (gradtx.kahan_summation(gradtx.adam(lr)), jnp.bfloat16),
    }
    losses = {name: train(tx, dtype) for name, (tx, dtype) in runs.items()}
    base = losses["float32 Adam"]
    return [{"run": name, "final loss": v, "x float32 Adam": v / base} for name, v in losses.items()]


def show(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    keys = list(rows[0])
    print("  " + " | ".join(f"{k:>22}" for k in keys))
    for row in rows:
        cells = [f"{v:22.4g}" if isinstance(v, float) else f"{v!s:>22}" for v in row.values()]
        print("  " + " | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check, not a measurement)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    n, steps, config = (1 << 16, 30, QUICK) if args.quick else (1 << 22, 300, FULL)
    started = time.perf_counter()
    results = {"bytes": bytes_table(n)}
    show(f"state bytes per parameter ({n:,} float32 params)", results["bytes"])
    results["time"] = time_table(n, config)
    show("AdamW step time (CPU)", results["time"])
    results["convergence"] = convergence_table(steps)
    show(f"digits MLP, {steps} Adam steps (lr 1e-3, batch 128)", results["convergence"])
    now = datetime.datetime.now().astimezone()
    stem = f"memory-{socket.gethostname()}-{now:%Y-%m-%d}" + ("-quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": now.isoformat(timespec="seconds"),
        "n_params": n,
        "steps": steps,
        "wall_s": time.perf_counter() - started,
    }
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, **results}, indent=1))
    print(f"\nwrote {args.out / stem}.json in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
