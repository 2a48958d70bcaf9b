"""Training state: one pytree passed in and returned by the step functions."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  batch_stats: dict
  opt_state: optax.OptState

  @property
  def variables(self) -> dict:
    """What model.apply takes."""
    return {"params": self.params, "batch_stats": self.batch_stats}


def make_init(model, optimizer, example: tuple):
  """init(rng) -> TrainState for model inputs shaped like the arrays in `example` (pure)."""
  def init(rng):
    variables = model.init(rng, *example, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=optimizer.init(params))
  return init


def init_state(model, optimizer, rng, example: tuple) -> TrainState:
  """make_init's state, as one compiled program (not op by op)."""
  return jax.jit(make_init(model, optimizer, example))(rng)


def count_params(state: TrainState) -> int:
  """Parameters plus BatchNorm moving statistics (the Keras count)."""
  return sum(x.size for x in jax.tree.leaves((state.params, state.batch_stats)))
