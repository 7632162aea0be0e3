"""Defaults shared by every run; the per-model files override what the study set per model.

Every field can be overridden on the command line, e.g. `--config.train.epochs=3`;
svhn_jax/config.py holds each field's type, allowed values and range, and when a run reads it
(`Field.applies_to`): a field the comments below mark for some runs only ("sgd only", "wrn",
"task=number", ...) and set away from its value here is refused in a run that does not read it.
"""

import ml_collections
from ml_collections import config_dict

from svhn_jax import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # digit: classify the centred digit of 32x32 crops (the study's) | number: read whole house
  # numbers from photos (model.name=multidigit; data.source synthetic or svhn_full)
  config.task = "digit"

  config.model = ml_collections.ConfigDict()
  # ann1 | ann2 | cnn1 | cnn2 | wrn | airbench | multidigit (task=number) | a 'module:attribute'
  # spec (svhn_jax/models/__init__.py)
  config.model.name = "cnn2"
  # The study's models only. auto: fused layers (svhn_jax/fast_layers.py) on the CPU, plain Flax
  # layers elsewhere | fast | flax
  config.model.impl = "auto"
  # Wide ResNet WRN-depth-width (Zagoruyko & Komodakis 2016), model.name=wrn only: depth 6n+4,
  # width the channel multiplier k, dropout between the convolutions of each block.
  config.model.wrn = ml_collections.ConfigDict()
  config.model.wrn.depth = 28
  config.model.wrn.width = 2
  config.model.wrn.dropout = 0.0
  config.model.wrn.standardize = False  # per-image standardization of the input
  # The number reader, model.name=multidigit only: size small (trains on 2 CPU cores in minutes)
  # | paper (Goodfellow et al. 2013: 8 conv layers of 48..192 units, two dense layers of 3,072;
  # for a GPU) | residual, residual_paper (the Wide ResNet's pre-activation blocks, for a CPU and
  # a GPU) | ctc, ctc_paper (a column per few pixels read with CTC, one digit classifier for
  # every position; CRNN, arXiv 1507.05717; models/reader_sizes.py); dropout after its dense
  # layers.
  config.model.reader = ml_collections.ConfigDict()
  config.model.reader.size = "small"
  config.model.reader.dropout = 0.0
  # airbench's small all-convolutional net (Keller Jordan's CIFAR-10 speedruns), model.name=
  # airbench only: its three blocks' widths; BatchNorm momentum, flax's (the old running
  # value's weight: airbench's BatchNorm(momentum=0.6) is Torch's 0.4, flax's 0.6); its first
  # layer's patch-whitening kernel side and eps (filters from the first training images).
  config.model.airbench = ml_collections.ConfigDict()
  config.model.airbench.block1 = 64
  config.model.airbench.block2 = 256
  config.model.airbench.block3 = 256
  config.model.airbench.bn_momentum = 0.6
  config.model.airbench.whiten_kernel = 2
  config.model.airbench.whiten_eps = 5e-4

  config.data = ml_collections.ConfigDict()
  # svhn: the study's file | synthetic: generated offline | svhn_cropped: the official format 2
  # | svhn_full: centred digit crops cut from the official format 1 photos
  config.data.source = "svhn"
  # an HDF5 file in the study's layout (svhn, synthetic) or a folder of the official files
  # (svhn_cropped); empty: download (svhn, svhn_cropped) or generate (synthetic)
  config.data.path = ""
  config.data.cache_dir = ""  # empty: $SVHN_JAX_CACHE or ~/.cache/svhn_jax
  config.data.preprocess = "raw"  # raw | mask (background-normalized, data-driven mask)
  # grey: the study's luma 0.299 R + 0.587 G + 0.114 B | rgb: colour crops (svhn_cropped,
  # svhn_full and task=number only)
  config.data.color = "grey"
  # svhn_cropped: SVHN format 2 (train_32x32.mat, test_32x32.mat, extra_32x32.mat) in the folder
  # config.data.path, or downloaded into the cache. It has no validation split: val_size crops
  # are carved from the training ones, stratified by class and seeded by split_seed (not by
  # config.seed, so the seeds of an ablation share one split); at most a fifth of them.
  # add extra_32x32.mat's 531,131 crops to the training split (svhn_cropped, svhn_full and
  # the photo tasks, number and locate, only; val_size and split_seed likewise, or with
  # train_on_val)
  config.data.use_extra = False
  config.data.val_size = 6_000
  config.data.split_seed = 0
  # source=synthetic with an empty path only (val and version: task=digit only)
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.train = 42_000
  config.data.synthetic.val = 60_000
  config.data.synthetic.test = 18_000
  config.data.synthetic.seed = 0
  # The whole photos' style, for tasks on photos (number, locate): number (the number fills
  # much of the photo) | scene (smaller, anywhere in a larger photo; configs/locate.py's).
  config.data.synthetic.photo_style = "number"
  # 5: calibrated so that the study's models score near their SVHN accuracies, with room above
  # CNN2 for stronger models | 4: version 3 with fewer unreadable crops, not calibrated | 3:
  # calibrated, but wide ResNets level off about 3 points above CNN2 (README.md) | 2: version 3
  # without STIX's fonts (ANN2 3.2 points above SVHN) | 1: the first, easier generator; 1-4 kept
  # to reproduce earlier results
  config.data.synthetic.version = 5
  # Train on the training and validation images together, keeping val_size of them (carved as
  # for svhn_cropped, by split_seed) for early stopping and model choice.
  config.data.train_on_val = False
  # task=number: the box around a photo's digits widened by a margin on each side (a share of its
  # width and height), clipped to the photo, resized to 64x64. Training photos draw their margin
  # uniformly in [margin_low, margin_high] (once per photo, by split_seed); validation and test
  # use eval_margin (Goodfellow et al.'s 15% a side). With source=synthetic, data.synthetic's
  # train and test count photos (val is unused: val_size photos are carved from train, stratified
  # by number length, as for svhn_full).
  config.data.numbers = ml_collections.ConfigDict()
  config.data.numbers.margin_low = 0.15
  config.data.numbers.margin_high = 1.0
  config.data.numbers.eval_margin = 0.15
  # random 54x54 windows of the 64x64 crops in training (drawn each step); false: the centre
  config.data.numbers.jitter = True
  # a crop narrower than min_aspect x its height is widened to that, about its centre (0: never)
  config.data.numbers.min_aspect = 0.0
  # task=locate: zoomed views per training photo besides the whole photo, each a window around
  # its number with random context (1.5-5x its size), letterboxed, so that one model also
  # refines a box on a second look (datasets/located.py); 0: the whole photos only
  config.data.locate = ml_collections.ConfigDict()
  config.data.locate.zoom_views = 0

  config.train = ml_collections.ConfigDict()
  # The run's length: epochs (Keras's, each sees every sample) or total_steps (full batches
  # across epochs, the last partial batch of each epoch dropped), exactly one of them, the other
  # None (`none` on the command line). Steps for a recipe meant to hold across data sizes;
  # svhn_jax/config.py says when to use which.
  config.train.epochs = config_dict.placeholder(int)
  config.train.epochs = 30
  config.train.total_steps = config_dict.placeholder(int)
  # total_steps only: validate and checkpoint every n steps and after the last (None: once an
  # epoch). Early stopping's and the plateau's patience count validations.
  config.train.eval_every_steps = config_dict.placeholder(int)
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.adam_eps = 1e-7  # adam, adamw: Keras's Adam default, not optax's 1e-8
  config.train.eval_batch_size = 2048  # inference chunk; at most 128 for a CNN on the CPU
  # Whole epochs under lax.scan (counted in steps: a validation period's steps within each
  # epoch): None (auto: accelerators, and the ANNs on the CPU), True or False; on the command
  # line auto, true or false.
  config.train.scan_epoch = config_dict.placeholder(bool)

  # The recipe. The study's: Adam, no weight decay, the plateau schedule, early stopping.
  # adam | adamw (decoupled weight decay) | sgd (Nesterov) | muon (Muon on the convolution
  # filters, SGD with Nesterov momentum on the rest)
  config.train.optimizer = "adam"
  config.train.momentum = 0.9  # sgd, muon (its SGD's)
  # muon only: Muon's peak rate on the convolution filters (the schedule's shape as
  # learning_rate's), its Nesterov momentum, Newton-Schulz steps, and whether each step first
  # rescales a filter bank to norm sqrt(filters) (airbench's Muon does)
  config.train.muon = ml_collections.ConfigDict()
  config.train.muon.learning_rate = 0.24
  config.train.muon.momentum = 0.6
  config.train.muon.ns_steps = 3
  config.train.muon.normalize = True
  # muon only: the biases' rate (BatchNorm's, the whitening layer's) is learning_rate times this,
  # their L2 weight decay weight_decay / this (the same decay per step as the other parameters)
  config.train.bias_lr_multiplier = 1.0
  # adamw: decoupled, scaled by the rate (Loshchilov & Hutter); adam and sgd: an L2 term's
  # gradient, weight_decay * w, added before the update (as Zagoruyko & Komodakis's 5e-4)
  config.train.weight_decay = 0.0
  config.train.schedule = "plateau"  # plateau (train.plateau) | cosine | onecycle, per step
  config.train.warmup_epochs = 0.0  # cosine, onecycle: linear warm-up from 0 over these epochs
  config.train.warmup_steps = config_dict.placeholder(int)  # or over these steps (one of the two)
  config.train.label_smoothing = 0.0  # Szegedy et al. 2016: targets (1 - a) one-hot + a / 10
  # Evaluate an exponential moving average of the weights, decay per step (0: off; e.g. 0.999)
  config.train.ema_decay = 0.0
  # Lookahead (Zhang et al. 2019, as airbench94): every n steps (0: off) the slow weights move to
  # d * slow + (1 - d) * fast, d = decay * (step / last step)^3, and training goes on from them;
  # the last step ends on the slow weights
  config.train.lookahead = ml_collections.ConfigDict()
  config.train.lookahead.every = 0
  config.train.lookahead.decay = 0.7737809375  # 0.95 ** 5, airbench94's
  # wrn, airbench only. bfloat16: activations and matmuls in bfloat16, parameters and optimizer
  # state in float32. auto: bfloat16 on GPU/TPU, float32 on the CPU (no fast bfloat16 there),
  # resolved when the run starts and saved in its config.json (a resumed run keeps it).
  config.train.compute_dtype = "auto"
  config.train.val_examples = 0  # validate on the first n validation crops each epoch (0: all)
  config.train.tta = 0  # test-time augmentation: mean softmax over shifts of up to n pixels
  # On-device augmentation in the train step (svhn_jax/augment.py); 0 turns a stage off
  config.train.augment = ml_collections.ConfigDict()
  config.train.augment.translate = 0  # pad and random crop, up to n pixels each way
  config.train.augment.cutout = 0  # side of the zeroed square, pixels
  config.train.augment.num_ops = 0  # RandAugment's N operations per image
  # RandAugment's M, 0..10, and the operations it draws from: read only with num_ops > 0
  config.train.augment.magnitude = 0.0
  # on the command line: --config.train.augment.ops=rotate,contrast (or "['rotate','contrast']")
  config.train.augment.ops = list(config_lib.AUGMENT_OPS)
  # Random distortions per image (augment.distort), before the stages above, each drawn from
  # [-x, x] (blur from [0, x]): scale and aspect as log-factors of up to 1 + x, rotation in
  # degrees, shear in dx per dy, contrast and color as blend factors 1 +- x, blur as a gaussian
  # sigma in pixels. 0 turns one off.
  config.train.augment.distort = ml_collections.ConfigDict()
  for name in ("scale", "aspect", "rotation", "shear", "contrast", "blur", "color"):
    config.train.augment.distort[name] = 0.0

  config.train.early_stopping = ml_collections.ConfigDict()
  # False: train every epoch, evaluate the last (and patience and min_delta are not read)
  config.train.early_stopping.enabled = True
  config.train.early_stopping.patience = 5  # on val_accuracy; best weights restored at the end
  config.train.early_stopping.min_delta = 0.0

  config.train.plateau = ml_collections.ConfigDict()  # train.schedule=plateau only
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
