"""TEMPORARY STUB: being written; replace this whole file."""
from typing import NamedTuple

def constant_schedule(*args, **kwargs):
    raise NotImplementedError

def linear_schedule(*args, **kwargs):
    raise NotImplementedError

def polynomial_schedule(*args, **kwargs):
    raise NotImplementedError

def exponential_decay(*args, **kwargs):
    raise NotImplementedError

def inverse_time_decay(*args, **kwargs):
    raise NotImplementedError

def piecewise_constant_schedule(*args, **kwargs):
    raise NotImplementedError

def piecewise_interpolate_schedule(*args, **kwargs):
    raise NotImplementedError

def cosine_decay_schedule(*args, **kwargs):
    raise NotImplementedError

def warmup_constant_schedule(*args, **kwargs):
    raise NotImplementedError

def warmup_cosine_decay_schedule(*args, **kwargs):
    raise NotImplementedError

def warmup_exponential_decay_schedule(*args, **kwargs):
    raise NotImplementedError

def join_schedules(*args, **kwargs):
    raise NotImplementedError

def cosine_onecycle_schedule(*args, **kwargs):
    raise NotImplementedError

def linear_onecycle_schedule(*args, **kwargs):
    raise NotImplementedError

def sgdr_schedule(*args, **kwargs):
    raise NotImplementedError

def sutskever_momentum_schedule(*args, **kwargs):
    raise NotImplementedError
