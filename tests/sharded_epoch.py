"""Helper run in a subprocess by test_train.py: one short epoch on however many devices XLA_FLAGS
gives, the resulting parameters saved to argv[1] (an .npz of flattened leaves)."""

import sys

import jax
import numpy as np
import optax

from hsi_jax import config_util, models, parallel
from hsi_jax.data import io, patches, split_files, splits
from hsi_jax.train import optim, state as state_lib
from hsi_jax.train import step as step_lib

config = config_util.load_config(sys.argv[2])
scene = io.load_scene("ip")
split, _, _ = split_files.split_from_config(config, labels=scene)
patch, windows = config.split.patch, 40  # 80 examples with flips: 5 steps of 16
mesh = parallel.make_mesh()
data = parallel.replicate(step_lib.DeviceData(
    cube=patches.pad_scene(scene.cube / 1000.0, patch),
    train_labels=split.train_window_labels[:windows],
    train_origins=splits.window_origins(split.train_windows[:windows], patch),
    train_flips=split.train_flips[:windows],
    val_origins=splits.window_origins(split.val_windows, patch), num_windows=np.int32(windows)),
    mesh)
model = models.build_model(config.model, scene.num_classes)
predict = step_lib.make_predict(model, patch, mesh, 64)
out = {"devices": jax.device_count()}
# The run's own optimiser (Keras-2 Nadam), and plain SGD: Adam-type updates turn 1e-7 differences
# in near-zero gradients into lr-sized ones, so parameters are compared after SGD.
for name, make_optimizer in (("run", lambda steps: optim.make_optimizer(config.train, steps)),
                             ("sgd", lambda steps: optax.sgd(0.01))):
  optimizer = make_optimizer(5)
  state = parallel.replicate(state_lib.init_state(
      model, optimizer, jax.random.key(0), (np.zeros((1, patch, patch, 200), np.float32),)), mesh)
  epoch = step_lib.make_train_epoch(model, make_optimizer, config.train, patch, mesh, augment=True)
  state, metrics = epoch(state, data, jax.random.key(1))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  out[f"{name}_loss"] = np.asarray(metrics["loss"])
  out[f"{name}_predictions"] = np.asarray(predict(variables, data.cube, data.val_origins))
  out.update({f"{name}_leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(variables))})
np.savez(sys.argv[1], **out)
