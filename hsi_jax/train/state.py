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


OPTIMIZERS = ("nadam", "adam")


def make_optimizer(train_config, steps_per_epoch: int) -> optax.GradientTransformation:
  """`nadam` (DA-IMRN, decision 7): learning rate x `lr_decay` every `lr_decay_every` epochs.
  `adam` (SSAN): constant learning rate, TF defaults (b1 0.9, b2 0.999, eps 1e-8)."""
  name = train_config.optimizer
  if name not in OPTIMIZERS:
    raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {name!r}.")
  if name == "adam":
    return optax.adam(train_config.learning_rate, b1=0.9, b2=0.999, eps=1e-8)
  every = train_config.lr_decay_every * steps_per_epoch
  boundaries = {every * k: train_config.lr_decay
                for k in range(1, train_config.epochs // train_config.lr_decay_every + 1)}
  schedule = optax.piecewise_constant_schedule(train_config.learning_rate, boundaries)
  return optax.nadam(schedule, b1=0.9, b2=0.999, eps=1e-8)


def init_state(model, optimizer, rng, example: tuple) -> TrainState:
  """Initial state for model inputs shaped like the arrays in `example` (one compiled program,
  not op by op)."""
  @jax.jit
  def init(rng):
    variables = model.init(rng, *example, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=optimizer.init(params))
  return init(rng)


def count_params(state: TrainState) -> int:
  """Parameters plus BatchNorm moving statistics (the Keras count)."""
  return sum(x.size for x in jax.tree.leaves((state.params, state.batch_stats)))
