"""TEMPORARY STUB: being written; replace this whole file."""
from typing import NamedTuple

class TraceState(NamedTuple):
    pass

class EmaState(NamedTuple):
    pass

class ScaleByMomentumState(NamedTuple):
    pass

class NesterovState(NamedTuple):
    pass

class BiasCorrectionState(NamedTuple):
    pass

def trace(*args, **kwargs):
    raise NotImplementedError

def ema(*args, **kwargs):
    raise NotImplementedError

def scale_by_momentum(*args, **kwargs):
    raise NotImplementedError

def nesterov(*args, **kwargs):
    raise NotImplementedError

def bias_correction(*args, **kwargs):
    raise NotImplementedError
