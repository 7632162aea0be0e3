"""A Wide ResNet recipe that is strong on SVHN, sized for a GPU: WRN-16-4 trained with SGD
(Nesterov), weight decay, a cosine schedule with warm-up, translation + Cutout + RandAugment, label
smoothing, an EMA of the weights, and test-time translations, on the training and validation
crops together.

The architecture and optimizer follow Zagoruyko & Komodakis 2016 (arXiv 1605.07146: SGD with
Nesterov momentum 0.9, weight decay 5e-4, batch 128; their SVHN runs used WRN-16-8, dropout 0.4);
Cutout follows DeVries & Taylor 2017 (arXiv 1708.04552, 20-pixel squares on SVHN); RandAugment
Cubuk et al. 2019 (arXiv 1909.13719). Their numbers come from the official SVHN data; on the
study's file and the offline proxy, see README's results.

For SVHN-sized data (tens to hundreds of thousands of crops) on an accelerator (bfloat16 there,
`compute_dtype` auto). Its length is counted in steps, 30,000 of batch 128 (its former 40 epochs
of the 96,000 pooled crops of the study's file or the proxy, 750 steps each, warm-up one such
epoch, validated as often): Cutout, RandAugment, dropout and label smoothing pay over that many
updates, and a smaller set gets as many, not a few hundred (on 3,200 real digits, 15 epochs were
375 steps and it underfitted: 44% training accuracy, 61.5% test, issue 29). On a CPU it takes
hours; for a few thousand crops there see configs/wrn_small.py, for the proxy configs/wrn_cpu.py.

  python -m svhn_jax.main --config=configs/wrn.py --workdir=runs/wrn
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = "wrn"
  config.model.wrn.depth = 16
  config.model.wrn.width = 4
  config.model.wrn.dropout = 0.3
  config.data.train_on_val = True
  config.train.epochs = None
  config.train.total_steps = 30_000
  config.train.eval_every_steps = 750
  config.train.batch_size = 128
  config.train.optimizer = "sgd"
  config.train.learning_rate = 0.05
  config.train.momentum = 0.9
  config.train.weight_decay = 5e-4
  config.train.schedule = "cosine"
  config.train.warmup_steps = 750
  config.train.label_smoothing = 0.1
  config.train.ema_decay = 0.999
  config.train.tta = 2
  config.train.augment.translate = 2
  config.train.augment.cutout = 16
  config.train.augment.num_ops = 2
  config.train.augment.magnitude = 5.0
  # Every op but `color`, which leaves greyscale crops as they are (none flips: see augment.py).
  # Invert suits SVHN, whose digits are light on dark and dark on light.
  config.train.augment.ops = [op for op in config.train.augment.ops if op != "color"]
  # A schedule sets the rate every step and the run keeps its last epoch's weights.
  config.train.early_stopping.enabled = False
  # compute_dtype auto (configs/default.py): bfloat16 on accelerators, which run its matmuls and
  # convolutions natively, float32 on the CPU, which emulates it; parameters stay float32.
  return config
