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


def make_optimizer(train_config, steps_per_epoch: int) -> optax.GradientTransformation:
  """Nadam (decision 7) with the learning rate x decay every `lr_decay_every` epochs."""
  every = train_config.lr_decay_every * steps_per_epoch
  boundaries = {every * k: train_config.lr_decay
                for k in range(1, train_config.epochs // train_config.lr_decay_every + 1)}
  schedule = optax.piecewise_constant_schedule(train_config.learning_rate, boundaries)
  return optax.nadam(schedule, b1=0.9, b2=0.999, eps=1e-8)


def init_state(model, optimizer, rng, example) -> TrainState:
  """Initial state for inputs shaped like `example` (one compiled program, not op by op)."""
  @jax.jit
  def init(rng):
    variables = model.init(rng, example, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=optimizer.init(params))
  return init(rng)


def count_params(state: TrainState) -> int:
  """Parameters plus BatchNorm moving statistics (the Keras count)."""
  return sum(x.size for x in jax.tree.leaves((state.params, state.batch_stats)))
