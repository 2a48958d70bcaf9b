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


OPTIMIZERS = ("nadam", "adam", "sgd")


def make_optimizer(train_config, steps_per_epoch: int) -> optax.GradientTransformation:
  """`nadam` (DA-IMRN, decision 7): learning rate x `lr_decay` every `lr_decay_every` epochs.
  `adam` (SSAN): constant learning rate, TF defaults (b1 0.9, b2 0.999, eps 1e-8). `sgd`: plain
  SGD with nadam's step decay (its updates are linear in the gradients, so float-level differences
  stay float-level: the optimiser of the equivalence tests)."""
  name = train_config.optimizer
  if name not in OPTIMIZERS:
    raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {name!r}.")
  if name == "adam":
    return optax.adam(train_config.learning_rate, b1=0.9, b2=0.999, eps=1e-8)
  every = jnp.maximum(train_config.lr_decay_every * steps_per_epoch, 1)
  num_decays = train_config.epochs // train_config.lr_decay_every
  decay = jnp.float32(train_config.lr_decay)

  def schedule(count):  # steps_per_epoch may be traced (seeds.py: one per partition)
    return train_config.learning_rate * decay ** jnp.minimum(count // every, num_decays)

  if name == "sgd":
    return optax.sgd(schedule)
  return optax.nadam(schedule, b1=0.9, b2=0.999, eps=1e-8)


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
