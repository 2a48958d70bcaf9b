"""Keras-2 Nadam against a plain numpy transcription of its update rule, and against optax.nadam."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from conftest import REPO
from hsi_jax import config_util
from hsi_jax.train import optim

# DA-IMRN's optimiser settings as the config holds them (train.b1, b2, eps, schedule_decay).
DA_IMRN_TRAIN = config_util.load_config(str(REPO / "configs" / "ip.py")).train
NADAM = {leaf: DA_IMRN_TRAIN[leaf] for leaf in ("b1", "b2", "eps", "schedule_decay")}


def keras_nadam_numpy(grads, lr, *, b1, b2, eps, schedule_decay, param=None):
  """Keras 2.x Nadam.get_updates, step by step, in float64 numpy (lr(t) for step t = 0, 1, ...)."""
  p = np.zeros_like(grads[0]) if param is None else param.copy()
  m, v, m_schedule = np.zeros_like(p), np.zeros_like(p), 1.0
  for step, g in enumerate(grads):
    t = step + 1
    momentum_cache_t = b1 * (1.0 - 0.5 * 0.96 ** (t * schedule_decay))
    momentum_cache_t_1 = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * schedule_decay))
    m_schedule_new = m_schedule * momentum_cache_t
    m_schedule_next = m_schedule * momentum_cache_t * momentum_cache_t_1
    m_schedule = m_schedule_new
    g_prime = g / (1.0 - m_schedule_new)
    m = b1 * m + (1.0 - b1) * g
    m_t_prime = m / (1.0 - m_schedule_next)
    v = b2 * v + (1.0 - b2) * g ** 2
    v_t_prime = v / (1.0 - b2 ** t)
    m_t_bar = (1.0 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
    p = p - lr(step) * m_t_bar / (np.sqrt(v_t_prime) + eps)
  return p


def run_optax(transform, grads, param):
  state = transform.init(jnp.asarray(param))
  params = jnp.asarray(param)

  @jax.jit
  def step(params, state, g):
    updates, state = transform.update(g, state, params)
    return optax.apply_updates(params, updates), state

  for g in grads:
    params, state = step(params, state, jnp.asarray(g, jnp.float32))
  return np.asarray(params)


def test_keras_nadam_matches_numpy_rule_and_differs_from_optax_nadam():
  rng = np.random.default_rng(0)
  grads = rng.normal(0, 1, (300, 7, 5)) * rng.uniform(0.01, 10, (1, 7, 5))
  param = rng.normal(0, 1, (7, 5)).astype(np.float32)
  schedule = lambda count: 1e-3 * 0.1 ** (count // 100)  # noqa: E731  (x0.1 every 100 steps)
  expected = keras_nadam_numpy(grads, schedule, **NADAM, param=param.astype(np.float64))
  ours = run_optax(optim.keras_nadam(schedule, **NADAM), grads, param)
  np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=2e-6)
  # optax.nadam has no momentum schedule: after 300 steps it sits measurably elsewhere.
  theirs = run_optax(optax.nadam(schedule, b1=NADAM["b1"], b2=NADAM["b2"], eps=NADAM["eps"]),
                     grads, param)
  moved = np.abs(expected - param)
  assert np.median(np.abs(theirs - expected) / moved) > 0.05
  assert np.median(np.abs(ours - expected) / moved) < 1e-3


def test_first_step_weights():
  """Step 1: Keras puts (1 - mu_1) / (1 - mu_1) + mu_2 (1 - b1) / (1 - mu_1 mu_2) on g, optax
  (1 - b1) / (1 - b1) + b1 (1 - b1) / (1 - b1^2): both normalise by sqrt(v_hat) = |g|."""
  g = jnp.array([2.0])
  b1, decay = NADAM["b1"], NADAM["schedule_decay"]
  mu1, mu2 = (b1 * (1 - 0.5 * 0.96 ** (decay * t)) for t in (1, 2))
  keras_weight = 1.0 + mu2 * (1 - b1) / (1 - mu1 * mu2)
  nadam = optim.keras_nadam(1.0, **NADAM)
  updates, _ = nadam.update(g, nadam.init(g))
  np.testing.assert_allclose(-np.asarray(updates), keras_weight, rtol=1e-5)
  updates, _ = optax.nadam(1.0).update(g, optax.nadam(1.0).init(g))
  np.testing.assert_allclose(-np.asarray(updates), 1.0 + 0.9 * 0.1 / (1 - 0.81), rtol=1e-5)


def test_make_optimizer_rejects_unknown_name_and_builds_each():
  config = ml_collections.ConfigDict(dict(optimizer="keras_nadam", learning_rate=1e-3, lr_decay=0.1,
                                          lr_decay_every=20, epochs=100, rho=0.9,  # rmsprop's
                                          **NADAM))
  params = {"w": jnp.ones(3)}
  for name in optim.OPTIMIZERS:
    config.optimizer = name
    transform = optim.make_optimizer(config)
    updates, _ = transform.update({"w": jnp.ones(3)}, transform.init(params), params)
    assert np.all(np.asarray(updates["w"]) < 0)
  config.optimizer = "adamw"
  try:
    optim.make_optimizer(config)
  except ValueError as error:
    assert "keras_nadam" in str(error)
  else:
    raise AssertionError("an unknown optimiser was accepted")


def test_make_optimizer_reads_the_moment_rates_and_epsilon_from_the_config():
  """A gradient of 1e-7 on the first step: the update is lr * w g / (|g| + eps) (w the optimiser's
  weight on g), so eps = 1e-7 instead of 1e-8 shrinks it by (1e-7 + 1e-8) / (2e-7) -- the
  difference Keras' later default epsilon would make."""
  g = {"w": jnp.full(3, 1e-7)}
  for name in ("keras_nadam", "nadam", "adam"):
    config = ml_collections.ConfigDict(dict(optimizer=name, learning_rate=1.0, **NADAM))
    sizes = {}
    for eps in (NADAM["eps"], 1e-7):
      config.eps = eps
      transform = optim.make_optimizer(config)
      updates, _ = transform.update(g, transform.init(g), g)
      sizes[eps] = float(-updates["w"][0])
    np.testing.assert_allclose(sizes[1e-7] / sizes[NADAM["eps"]], 1.1e-7 / 2e-7, rtol=1e-4)
  # Step 2 weighs the first gradient by b1: another b1, another step.
  config = ml_collections.ConfigDict(dict(optimizer="adam", learning_rate=1.0, **NADAM))
  steps = []
  for b1 in (NADAM["b1"], 0.5):
    config.b1 = b1
    transform = optim.make_optimizer(config)
    state = transform.init(g)
    _, state = transform.update({"w": jnp.ones(3)}, state, g)
    updates, _ = transform.update({"w": -jnp.ones(3)}, state, g)
    steps.append(float(updates["w"][0]))
  assert abs(steps[0] - steps[1]) > 0.1


def test_round_learning_rate_decays_per_epoch_and_is_set_in_the_state():
  config = ml_collections.ConfigDict(dict(optimizer="keras_nadam", learning_rate=1e-3, lr_decay=0.1,
                                          lr_decay_every=20, epochs=50))
  rates = [float(optim.round_learning_rate(config, r)) for r in (0, 19, 20, 39, 40, 49, 60)]
  np.testing.assert_allclose(rates, [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5, 1e-5], rtol=1e-6)
  config.optimizer = "adam"
  assert float(optim.round_learning_rate(config, 40)) == np.float32(1e-3)
  # The rate set in the state is the one the update uses: half the rate, half the step (SGD).
  config.optimizer = "sgd"
  transform = optim.make_optimizer(config)
  params, grads = {"w": jnp.ones(3)}, {"w": jnp.full(3, 2.0)}
  state = transform.init(params)
  full, _ = transform.update(grads, optim.set_learning_rate(state, 1e-3), params)
  half, _ = transform.update(grads, optim.set_learning_rate(state, 5e-4), params)
  np.testing.assert_allclose(np.asarray(half["w"]), np.asarray(full["w"]) / 2, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(full["w"]), -2e-3, rtol=1e-6)
