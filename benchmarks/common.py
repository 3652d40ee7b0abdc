"""What a workload is, and the few helpers the workload modules share."""
import dataclasses
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass
class Case:
  """The zero-argument calls one row of the table times. A call may keep state between calls (a training loop feeds
  its new state back, see `stepper`): the first calls of tiny and jax.jit start from the same state, and their
  results, through `check`, are the ones compared."""
  tiny: Callable[[], Any]
  jax: Callable[[], Any]
  tinygrad: Callable[[], Any] | None = None   # the same program hand-written in tinygrad, where there is one
  check: Callable[[Any], Any] = lambda out: out   # the part of an output (as numpy) to compare: all of it, a loss, ...
  size: str = ""   # the sizes that --quick changes, shown after the workload's name


@dataclasses.dataclass(frozen=True)
class Workload:
  name: str
  build: Callable[[bool], Case]   # build(quick) -> Case: inputs from fixed seeds; quick means smaller sizes


class Skip(Exception):
  """Raised by a build when its workload cannot run here (an optional package missing): the row says why."""


def rng(seed=0): return np.random.default_rng(seed)


def normal(r, *shape, scale=1.0): return (r.standard_normal(shape) * scale).astype(np.float32)


def stepper(step, state, *args):
  """A training loop's call: each call runs `state, aux = step(state, *args)` and keeps the new state for the next,
  as a user's loop does (for tiny, outputs fed back as inputs). Returns (state, aux); `check=aux_of` compares aux."""
  def call():
    nonlocal state
    state, aux = step(state, *args)
    return state, aux
  return call


def aux_of(out): return out[1]
