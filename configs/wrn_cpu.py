"""configs/wrn.py's recipe sized for 2 CPU cores: WRN-16-1 (175k parameters, about the study
CNN2's 164k) for 6 epochs on the training and validation crops together (96,000), under an hour on the
Intel Xeon this project's machines have (see README's results), float32.

  python -m svhn_jax.main --config=configs/wrn_cpu.py --workdir=runs/wrn_cpu
"""

from configs import wrn


def get_config():
  config = wrn.get_config()
  config.model.depth = 16
  config.model.width = 1
  config.model.dropout = 0.0  # too few epochs for dropout to pay (the paper drops 0.3-0.4)
  config.train.epochs = 6
  config.train.warmup_epochs = 0.5
  config.train.learning_rate = 0.05
  config.train.augment.cutout = 8
  config.train.augment.num_ops = 1
  config.train.tta = 1
  # XLA:CPU has no fast bfloat16: float32 is as fast here (measured, benchmarks/wrn_speed.py).
  config.train.compute_dtype = "float32"
  return config
