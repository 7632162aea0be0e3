"""A Wide ResNet recipe for a few thousand crops on a CPU: WRN-16-1 (175k parameters, float32 by
`compute_dtype` auto) for 2,000 steps of batch 64, SGD (Nesterov) with weight decay on a cosine
schedule, translations and one light geometric RandAugment op, an EMA of the weights and
test-time translations, on the training and validation crops together less `data.val_size`
(500) held out. Counted in steps, so 1,000 or 10,000 crops get the same 2,000 updates (43 epochs
of 3,000); configs/wrn_cpu.py is the recipe for the 96,000-crop proxy, configs/wrn.py for
SVHN-sized data on an accelerator.

Tuned on the validation split of the real-digit development set only (python -m
benchmarks.real_digits --out=DIR: 3,000 / 1,000 / 1,000, split by source digit), training on its
3,000 training crops alone (`--config.data.source=svhn --config.data.train_on_val=false
--config.data.path=DIR/real_digits_v1_3000_1000_1000_seed0.h5`), seed 0, on 2 cores of an AMD EPYC
family 25 model 1 (Zen 3) shared with other jobs (load 4-6): translation only, 98.40% validation
accuracy after 2,000 steps (98.60% at 1,750; training accuracy 100%; 864 s of training); with one of
identity, rotate, shear_x, shear_y at magnitude 4 (up to 12 degrees, shear 0.12) added, 98.70%
(98.30% at 1,750; training 99.94%; validation loss 0.037 against 0.052; 879 s). The two are within
the split's noise (a standard error of 0.4 points); the augmented one was kept for its lower
validation loss and its smaller gap to the training crops (rotations and shears also mimic how
writers differ: a guess, not tested on other writers).

As it is (the command below with --config.seed=0 and 1, same machine; the 4,000 training and
validation crops pooled, 500 carved back: 3,500 training crops), seeds 0 and 1 reached 99.20% and
99.20% test accuracy (training 99.9%), in 625 s and 362 s of training (656 s and 390 s in all, the
machine's load falling from about 4 to 2).

Why: at this size the regularization of configs/wrn.py (Cutout, RandAugment 2x5, dropout, label
smoothing) costs more than it gives in a few thousand updates (issue 29: 44% training accuracy after
375 steps), so this one has none of dropout and smoothing; batch 64 makes twice the updates an epoch
of batch 128 at about half the cost a step on the CPU (not compared here); and 2,000 steps are
enough for the EMA and the cosine tail to settle (validation rose from 96.9% at step 1,000 to
98.4-98.7% at 2,000). The warm-up (100 steps) and the EMA's decay (0.995: an average over the last
200 steps, a tenth of the run) scale with the run, not the data.

  python -m svhn_jax.main --config=configs/wrn_small.py --workdir=runs/wrn_small \\
      --config.data.source=svhn --config.data.path=real_digits_v1_3000_1000_1000_seed0.h5
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = "wrn"
  config.model.wrn.depth = 16
  config.model.wrn.width = 1
  config.model.wrn.dropout = 0.0  # none, nor label smoothing: too few updates for them to pay
  config.data.train_on_val = True
  # At most a fifth of the pooled crops is carved (input_pipeline.carve_validation).
  config.data.val_size = 500
  config.train.epochs = None
  config.train.total_steps = 2000
  config.train.warmup_steps = 100
  config.train.eval_every_steps = 250
  config.train.batch_size = 64
  config.train.optimizer = "sgd"
  config.train.learning_rate = 0.05
  config.train.momentum = 0.9
  config.train.weight_decay = 5e-4
  config.train.schedule = "cosine"
  config.train.ema_decay = 0.995
  config.train.tta = 1
  config.train.augment.translate = 2
  config.train.augment.num_ops = 1
  config.train.augment.magnitude = 4.0
  config.train.augment.ops = ["identity", "rotate", "shear_x", "shear_y"]
  config.train.early_stopping.enabled = False
  return config
