"""Defaults shared by every run; the per-model files override what the study set per model.

Every field can be overridden on the command line, e.g. `--config.train.epochs=3`;
svhn_jax/config.py holds each field's type, allowed values and range.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.name = "cnn2"  # ann1 | ann2 | cnn1 | cnn2
  # auto: fused layers (svhn_jax/fast_layers.py) on the CPU, plain Flax layers elsewhere | fast | flax
  config.model.impl = "auto"

  config.data = ml_collections.ConfigDict()
  # svhn: the study's file | synthetic: generated offline | svhn_cropped: the official format 2
  # | svhn_full: centred digit crops cut from the official format 1 photos
  config.data.source = "svhn"
  # an HDF5 file in the study's layout (svhn, synthetic) or a folder of the official files
  # (svhn_cropped); empty: download (svhn, svhn_cropped) or generate (synthetic)
  config.data.path = ""
  config.data.cache_dir = ""  # empty: $SVHN_JAX_CACHE or ~/.cache/svhn_jax
  config.data.preprocess = "raw"  # raw | mask (background-normalized, data-driven mask)
  # grey: the study's luma 0.299 R + 0.587 G + 0.114 B | rgb: colour crops (svhn_cropped only)
  config.data.color = "grey"
  # svhn_cropped: SVHN format 2 (train_32x32.mat, test_32x32.mat, extra_32x32.mat) in the folder
  # config.data.path, or downloaded into the cache. It has no validation split: val_size crops
  # are carved from the training ones, stratified by class and seeded by split_seed (not by
  # config.seed, so the seeds of an ablation share one split); at most a fifth of them.
  config.data.use_extra = False  # add extra_32x32.mat's 531,131 crops to the training split
  config.data.val_size = 6_000
  config.data.split_seed = 0
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.train = 42_000
  config.data.synthetic.val = 60_000
  config.data.synthetic.test = 18_000
  config.data.synthetic.seed = 0

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 30
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.adam_eps = 1e-7  # Keras's Adam default, not optax's 1e-8
  config.train.eval_batch_size = 2048  # inference chunk; at most 128 for a CNN on the CPU
  # Whole epochs under lax.scan: None (auto: accelerators, and the ANNs on the CPU), True or
  # False; on the command line auto, true or false.
  config.train.scan_epoch = config_dict.placeholder(bool)

  config.train.early_stopping = ml_collections.ConfigDict()
  config.train.early_stopping.patience = 5  # on val_accuracy; best weights restored at the end
  config.train.early_stopping.min_delta = 0.0

  config.train.plateau = ml_collections.ConfigDict()
  config.train.plateau.factor = 0.5  # on val_loss, as Keras's ReduceLROnPlateau
  config.train.plateau.patience = 3
  config.train.plateau.min_delta = 1e-4
  config.train.plateau.min_lr = 1e-6
  config.train.plateau.cooldown = 0

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.enabled = True

  # Data parallelism over a one-axis device mesh, 'data': each global batch is split over the
  # devices, parameters and optimizer state are replicated, BatchNorm sees the global batch. The
  # same config gives the same run on any device count (train.batch_size is the global batch and
  # must divide by it; the learning rate is not rescaled).
  config.mesh = ml_collections.ConfigDict()
  config.mesh.devices = -1  # -1: every device of every process; n: the first n (n/processes each)

  return config
