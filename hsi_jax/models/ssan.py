"""SSAN (Mei et al., Remote Sens. 2019) and its comparison rows, as the official TF-1 code builds them.

Inputs of every model here: `spectrum` (N, T) -- the centre pixel's bands, one scalar per time
step -- and `patch` (N, S, S, K) -- the PCA neighbourhood (27 x 27 x 4 in the paper). Output:
logits (N, C). docs/decisions.md, "SSAN network":

* spectral branch (ARNN): bidirectional GRU (TF-1 cell; docs/decisions.md, "GRU cell") over the T
  bands -> H (N, T, 2U); additive attention v_t = tanh(H_t W + b), a = softmax_t(v_t . u),
  s = sum_t a_t H_t; z_spe = s W_spe + b_spe (no activation).
* spatial branch (ACNN): pixel mask m = sigmoid(tanh(X w_s + b_s)) (N, S, S, 1), X' = m * X; two
  conv5x5 + ReLU + maxpool2 (SAME) layers (32, 64 filters), FC 1024 + ReLU + dropout, FC -> C.
* fusion: the SAME Dense(256)+ReLU applied to z_spe and to z_spa, concatenated, Dense(1024)+ReLU,
  Dense(C).

`spectral` / `spatial` / `attention` select the rows of the SSAN comparison: ssan (both, with
attention), arnn / acnn (one branch with attention: its own C-way output is the logits), rnn / cnn
(one branch, no attention; the RNN summarises the sequence by the last output of each direction).
Initialisers are the standard ones (docs/decisions.md, "Initialisers": the code's std-1 normal is
unusable): GRU kernels
Glorot-uniform with gate bias 1 (as TF-1), attention weights as the code (W Glorot, u ~ N(0, 0.1^2),
mask weight trunc-normal std 1e-4), convolutions and dense layers Flax's LeCun-normal, zero bias.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from hsi_jax.models import layers


def gru_cell(x_proj_gates, x_proj_candidate, h, kernels):
  """One TF-1 GRUCell step. x_proj_* are the input parts of the two matmuls ([x, h] W split into
  x W_x + h W_h); the reset gate multiplies h BEFORE the candidate matmul:
    [r, u] = sigmoid(x W_gx + h W_gh + b_g);  c = tanh(x W_cx + (r * h) W_ch + b_c);
    h' = u * h + (1 - u) * c.
  h (..., U); x_proj_gates (..., 2U) and x_proj_candidate (..., U) include the biases."""
  gate_h, candidate_h = kernels
  gates = jax.nn.sigmoid(x_proj_gates + h @ gate_h)
  reset, update = jnp.split(gates, 2, axis=-1)
  candidate = jnp.tanh(x_proj_candidate + (reset * h) @ candidate_h)
  return update * h + (1.0 - update) * candidate


class BiGRU(nn.Module):
  """Bidirectional TF-1 GRU, zero initial states. x (N, T, D) -> outputs (N, T, 2U) (forward
  outputs, then backward outputs re-aligned to time order). Both directions run in one scan of T
  steps: their matmuls are batched, which halves the sequential steps. `gate_bias_init`: the
  initial bias of the reset and update gates (TF-1's 1.0)."""
  units: int
  gate_bias_init: float

  @nn.compact
  def __call__(self, x):
    units, in_dim = self.units, x.shape[-1]
    glorot = nn.initializers.glorot_uniform()

    def kernel(name, columns):
      # One kernel per direction over the concatenated [x, h], as TF-1 stores it: (2, D+U, cols).
      return self.param(name, lambda key: jnp.stack(
          [glorot(k, (in_dim + units, columns)) for k in jax.random.split(key, 2)]))

    gate_kernel = kernel("gate_kernel", 2 * units)
    gate_bias = self.param("gate_bias", nn.initializers.constant(self.gate_bias_init),
                           (2, 2 * units))
    candidate_kernel = kernel("candidate_kernel", units)
    candidate_bias = self.param("candidate_bias", nn.initializers.zeros, (2, units))

    # (2, T, N, D): direction 0 reads bands 1..T, direction 1 reads T..1.
    sequences = jnp.stack([x, jnp.flip(x, 1)]).swapaxes(1, 2)
    x_gates = jnp.einsum("stnd,sdk->tsnk", sequences, gate_kernel[:, :in_dim]) + gate_bias[:, None]
    x_cand = (jnp.einsum("stnd,sdk->tsnk", sequences, candidate_kernel[:, :in_dim])
              + candidate_bias[:, None])
    kernels = (gate_kernel[:, in_dim:], candidate_kernel[:, in_dim:])

    def step(h, inputs):
      h = gru_cell(*inputs, h, kernels)
      return h, h

    h0 = jnp.zeros((2, x.shape[0], units), x.dtype)
    _, outputs = jax.lax.scan(step, h0, (x_gates, x_cand))  # (T, 2, N, U)
    forward, backward = outputs[:, 0], jnp.flip(outputs[:, 1], 0)
    return jnp.concatenate([forward, backward], -1).swapaxes(0, 1)


class BandAttention(nn.Module):
  """Additive attention over time steps. h (N, T, F) -> (summary (N, F), weights (N, T)); the
  context vector u (size,) starts N(0, context_init_std^2)."""
  size: int
  context_init_std: float

  @nn.compact
  def __call__(self, h):
    scores = jnp.tanh(nn.Dense(self.size, kernel_init=nn.initializers.glorot_uniform(),
                               name="project")(h))
    u = self.param("context", nn.initializers.normal(self.context_init_std), (self.size,))
    weights = jax.nn.softmax(scores @ u, axis=-1)
    return jnp.einsum("nt,ntf->nf", weights, h), weights


class PixelAttention(nn.Module):
  """Spatial mask m = sigmoid(tanh(X w + b)) per pixel. x (N, S, S, K) -> (m * x, m (N, S, S));
  w (K, 1) starts truncated-normal with std mask_init_std."""
  mask_init_std: float

  @nn.compact
  def __call__(self, x):
    logits = nn.Dense(1, kernel_init=nn.initializers.truncated_normal(self.mask_init_std),
                      name="mask")(x)
    mask = jax.nn.sigmoid(jnp.tanh(logits))
    return mask * x, mask[..., 0]


class SSAN(nn.Module):
  """See the module docstring. __call__(spectrum (N, T), patch (N, S, S, K), train) -> (N, C).
  The widths, rates and initial scales are config.model's (configs/common.py, ssan_sections)."""
  num_classes: int
  conv: Callable                 # the spatial branch's convolutions (layers.ConvForms.conv2d_same)
  gru_units: int                 # per direction
  attention_size: int            # band attention's projection width
  conv_features: tuple[int, int]
  conv_kernel: int               # side of the spatial branch's square convolutions
  pool_window: int               # side and stride of its SAME max-pools
  fc_units: int
  fusion_units: tuple[int, int]
  dropout_rate: float            # the code's 1 - keep-prob, on the spatial FC only
  gru_gate_bias_init: float      # BiGRU.gate_bias_init
  context_init_std: float        # BandAttention.context_init_std
  mask_init_std: float           # PixelAttention.mask_init_std
  spectral: bool = True
  spatial: bool = True
  attention: bool = True

  def spectral_logits(self, spectrum):
    h = BiGRU(self.gru_units, self.gru_gate_bias_init, name="bigru")(spectrum[..., None])
    if self.attention:
      summary, _ = BandAttention(self.attention_size, self.context_init_std,
                                 name="band_attention")(h)
    else:  # RNN row: last output of each direction
      summary = jnp.concatenate([h[:, -1, :self.gru_units], h[:, 0, self.gru_units:]], -1)
    return nn.Dense(self.num_classes, name="spectral_out")(summary)

  def spatial_logits(self, patch, train: bool):
    x = PixelAttention(self.mask_init_std, name="pixel_attention")(patch)[0] \
        if self.attention else patch
    kernel, window = (self.conv_kernel,) * 2, (self.pool_window,) * 2
    for i, features in enumerate(self.conv_features):
      x = nn.relu(layers.Conv2DSame(features, kernel, self.conv, name=f"conv{i + 1}")(x))
      x = nn.max_pool(x, window, window, padding="SAME")
    x = nn.relu(nn.Dense(self.fc_units, name="fc")(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name="spatial_out")(x)

  @nn.compact
  def __call__(self, spectrum, patch, train: bool = False):
    if not (self.spectral or self.spatial):
      raise ValueError("SSAN needs at least one of the spectral and spatial branches.")
    branches = []
    if self.spectral:
      branches.append(self.spectral_logits(spectrum))
    if self.spatial:
      branches.append(self.spatial_logits(patch, train))
    if len(branches) == 1:
      return branches[0]
    shared = nn.Dense(self.fusion_units[0], name="fusion_shared")
    fused = jnp.concatenate([nn.relu(shared(z)) for z in branches], -1)
    fused = nn.relu(nn.Dense(self.fusion_units[1], name="fusion")(fused))
    return nn.Dense(self.num_classes, name="classifier")(fused)


# The comparison rows of the SSAN paper (docs/decisions.md, "Comparison rows") -> (spectral,
# spatial, attention).
VARIANTS = {"ssan": (True, True, True), "arnn": (True, False, True), "acnn": (False, True, True),
            "rnn": (True, False, False), "cnn": (False, True, False)}
