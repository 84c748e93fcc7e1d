"""Test-wide settings, for tests/ and for the docstring examples in gradtx/ alike.

- Strict dtype promotion: any implicit promotion inside gradtx (bfloat16 + float32, ...) is an error,
  so a hyperparameter can never silently change a dtype.
- x64 on, so float64 paths are tested; tests state their dtypes explicitly.
- optax itself relies on implicit promotion: call it inside `jax.numpy_dtype_promotion("standard")`.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
