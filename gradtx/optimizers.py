"""TEMPORARY STUB: being written; replace this whole file."""
from typing import NamedTuple

def sgd(*args, **kwargs):
    raise NotImplementedError

def adagrad(*args, **kwargs):
    raise NotImplementedError

def rmsprop(*args, **kwargs):
    raise NotImplementedError

def adadelta(*args, **kwargs):
    raise NotImplementedError

def adam(*args, **kwargs):
    raise NotImplementedError

def adamw(*args, **kwargs):
    raise NotImplementedError

def nadam(*args, **kwargs):
    raise NotImplementedError

def adamax(*args, **kwargs):
    raise NotImplementedError

def amsgrad(*args, **kwargs):
    raise NotImplementedError
