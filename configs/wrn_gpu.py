"""configs/wrn_cpu.py's recipe at the width one GPU affords: WRN-16-4 (2.7 M parameters) in
bfloat16, batches of 256 at twice the learning rate (0.1, the linear scaling rule of Goyal et al.
2017, arXiv 1706.02677), 15 epochs on the training and validation crops together (96,000), with
random translations, label smoothing, an EMA of the weights and test-time translations.

Why not configs/wrn.py itself: that is the long recipe (40 epochs, Cutout, RandAugment, dropout)
for SVHN; on the proxy, the 2-core runs of WRN-16-1 ended within a point of their validation
accuracy on their training crops (96.5% and 95.6%), so capacity, not regularization, is what a
short run lacks. README's results give what it reached and how long it took.

  python -m svhn_jax.main --config=configs/wrn_gpu.py --workdir=runs/wrn_gpu
  python -m experiments.compare_models --config.models=wrn_gpu,cnn2 --seeds=3 \\
      --config.data.synthetic.train=42000 --config.data.synthetic.val=60000 \\
      --config.data.synthetic.test=18000
"""

from configs import wrn_cpu


def get_config():
  config = wrn_cpu.get_config()
  config.model.width = 4
  config.train.epochs = 15
  config.train.batch_size = 256
  config.train.learning_rate = 0.1
  config.train.warmup_epochs = 1.0
  config.train.eval_batch_size = 4096
  config.train.compute_dtype = "bfloat16"
  return config
