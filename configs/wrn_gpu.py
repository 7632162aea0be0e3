"""configs/wrn_cpu.py's recipe at the width one GPU affords: WRN-16-4 (2.75 M parameters) with
dropout 0.4 (Zagoruyko & Komodakis 2016's SVHN setting, arXiv 1605.07146) in bfloat16, batches
of 256 at twice the learning rate (0.1, the linear scaling rule of Goyal et al. 2017, arXiv
1706.02677), 25 epochs on the training and validation crops together (96,000), with random
translations, label smoothing, an EMA of the weights and test-time translations.

Measured on one NVIDIA H200 (benchmarks/gpu_wrn.sh, the proxy's version 3 at study size): 95.49%
test accuracy (seeds 0 and 1: 95.50%, 95.47%), about a minute a seed. Without dropout it fitted its
training crops to 99.7% and scored 95.45% over 3 seeds at 25 epochs, 95.46% at 15; dropout held
training at 96.9%. configs/wrn.py is the long recipe for SVHN (30,000 steps, Cutout, RandAugment).

  python -m svhn_jax.main --config=configs/wrn_gpu.py --workdir=runs/wrn_gpu
  python -m experiments.compare_models --config.models=wrn_gpu,cnn2 --seeds=3 \\
      --config.data.synthetic.train=42000 --config.data.synthetic.val=60000 \\
      --config.data.synthetic.test=18000
"""

from configs import wrn_cpu


def get_config():
  config = wrn_cpu.get_config()
  config.model.wrn.width = 4
  config.model.wrn.dropout = 0.4
  config.train.epochs = 25
  config.train.batch_size = 256
  config.train.learning_rate = 0.1
  config.train.warmup_epochs = 1.0
  config.train.eval_batch_size = 4096
  config.train.compute_dtype = "bfloat16"
  return config
