"""Optimisers: Keras-2 Nadam (DA-IMRN's, with its momentum schedule), optax's Nadam, Adam, SGD,
Keras' RMSprop; learning rates per round (step decay, DBDA's cosine) and per step (Keras' decay).

Keras-2 Nadam (the optimiser of the official DA-IMRN code; docs/decisions.md, "Optimiser") differs
from `optax.nadam`: its momentum coefficient follows a schedule,
  mu_t = b1 (1 - 0.5 * 0.96 ** (schedule_decay * t)),   t = 1, 2, ...
and the update mixes the current gradient and the first moment with weights taken from that
schedule and the running product P_t = mu_1 ... mu_t:
  m_t = b1 m + (1 - b1) g;  v_t = b2 v + (1 - b2) g^2
  m_bar = (1 - mu_t) g / (1 - P_t) + mu_{t+1} m_t / (1 - P_t mu_{t+1})
  update = -lr * m_bar / (sqrt(v_t / (1 - b2 ** t)) + eps).
With b1 = 0.9 the weight on the current gradient starts at 0.55 / (1 - 0.45) and falls slowly;
optax.nadam puts a fixed (1 - b1) / (1 - b1 ** t) on it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

OPTIMIZERS = ("keras_nadam", "nadam", "adam", "sgd", "rmsprop")


class KerasNadamState(NamedTuple):
  count: jax.Array          # () int32: steps taken
  momentum_product: jax.Array  # () float32: P_t, the product of the momentum schedule so far
  mu: optax.Updates         # first moment
  nu: optax.Updates         # second moment


def keras_nadam(learning_rate, *, b1: float, b2: float, eps: float,
                schedule_decay: float) -> optax.GradientTransformation:
  """Keras-2 Nadam as an optax transformation; `learning_rate` a float or a schedule of the step
  count (evaluated at the step being taken, counting from 0). b1, b2, eps, schedule_decay: Keras'
  beta_1, beta_2, epsilon, schedule_decay (the config's train.b1, ...). The 0.5 and 0.96 of the
  momentum schedule are constants of Keras' rule, not arguments of it."""

  def init(params):  # two separate zero trees: a donated state may not hold one buffer twice
    return KerasNadamState(jnp.zeros((), jnp.int32), jnp.ones((), jnp.float32),
                           jax.tree.map(jnp.zeros_like, params), jax.tree.map(jnp.zeros_like, params))

  def update(grads, state, params=None):
    del params
    t = (state.count + 1).astype(jnp.float32)
    mu_t = b1 * (1.0 - 0.5 * 0.96 ** (t * schedule_decay))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1.0) * schedule_decay))
    product = state.momentum_product * mu_t
    product_next = product * mu_next
    mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, grads)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate

    def one(g, m, v):
      m_bar = (1.0 - mu_t) * g / (1.0 - product) + mu_next * m / (1.0 - product_next)
      return -lr * m_bar / (jnp.sqrt(v / (1.0 - b2 ** t)) + eps)

    updates = jax.tree.map(one, grads, mu, nu)
    return updates, KerasNadamState(state.count + 1, product, mu, nu)

  return optax.GradientTransformation(init, update)


def make_optimizer(train_config) -> optax.GradientTransformation:
  """The config's optimiser, built once, its learning rate a hyper-parameter in the state that the
  host sets before each round (`set_learning_rate`, value from `round_learning_rate`).
  `keras_nadam` (DA-IMRN, faithful), `nadam` (optax's) and `sgd` take the step decay; `adam`
  (SSAN): constant learning rate (round_learning_rate). The moment rates and epsilon are train.b1,
  train.b2 and train.eps (keras_nadam also train.schedule_decay), read only by the optimisers that
  use them. `rmsprop` is Keras 2's: a = rho a + (1 - rho) g^2, update -lr g / (sqrt(a) + eps)
  (train.rho, train.eps). Optional leaves: train.weight_decay (sgd: PyTorch's, weight_decay x
  params added to the gradient) and train.step_decay (Keras' `decay`: the rate of step t is
  lr / (1 + step_decay t)). `sgd`'s updates are linear in the gradients, so float-level
  differences stay float-level: the optimiser of the equivalence tests."""
  name = train_config.optimizer
  if name not in OPTIMIZERS:
    raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {name!r}.")

  def moments():
    return dict(b1=train_config.b1, b2=train_config.b2, eps=train_config.eps)

  factories = {
      "adam": lambda learning_rate: optax.adam(learning_rate, **moments()),
      "sgd": lambda learning_rate: (optax.chain(
          optax.add_decayed_weights(train_config.weight_decay), optax.sgd(learning_rate))
          if train_config.get("weight_decay") else optax.sgd(learning_rate)),
      "rmsprop": lambda learning_rate: optax.rmsprop(
          learning_rate, decay=train_config.rho, eps=train_config.eps, eps_in_sqrt=False),
      "nadam": lambda learning_rate: optax.nadam(learning_rate, **moments()),
      "keras_nadam": lambda learning_rate: keras_nadam(
          learning_rate, **moments(), schedule_decay=train_config.schedule_decay),
  }
  step_decay = train_config.get("step_decay", 0.0)

  def factory(learning_rate):
    if not step_decay:
      return factories[name](learning_rate)
    return optax.chain(factories[name](learning_rate),
                       optax.scale_by_schedule(lambda count: 1.0 / (1.0 + step_decay * count)))

  return optax.inject_hyperparams(factory)(learning_rate=train_config.learning_rate)


def round_learning_rate(train_config, round_index: int) -> np.float32:
  """The learning rate of a round (an epoch for DA-IMRN): learning_rate x lr_decay every
  lr_decay_every epochs, at most epochs // lr_decay_every times; with train.cosine_period T
  (DBDA's CosineAnnealingLR(T), made anew every epoch and stepped with the epoch, as its code
  does) learning_rate in round 0 and learning_rate (1 + cos(pi (r - 1) / T)) / 2 in round r >= 1;
  constant for `adam` without a cosine and for a config without a decay (the pixel models')."""
  period = train_config.get("cosine_period", 0)
  if period:
    rate = 1.0 if round_index == 0 else 0.5 * (1.0 + np.cos(np.pi * (round_index - 1) / period))
    return np.float32(train_config.learning_rate * rate)
  if train_config.optimizer == "adam" or not train_config.get("lr_decay_every"):
    return np.float32(train_config.learning_rate)
  decays = min(round_index // train_config.lr_decay_every,
               train_config.epochs // train_config.lr_decay_every)
  return np.float32(train_config.learning_rate) * np.float32(train_config.lr_decay) ** decays


def set_learning_rate(opt_state, learning_rate):
  """make_optimizer's state with its learning rate replaced (a traced scalar is fine)."""
  hyperparams = dict(opt_state.hyperparams, learning_rate=jnp.asarray(learning_rate, jnp.float32))
  return opt_state._replace(hyperparams=hyperparams)
