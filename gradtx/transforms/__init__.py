"""Transformations and their optimizers, one file per algorithm family (see README.md beside this file).

The public names are re-exported by `gradtx`.
"""
