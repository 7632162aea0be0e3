"""The recipe sweep (experiments/recipe_sweep.py): the study's CNN2 at batch 32 and the Wide
ResNet recipes for a CPU, each trained on exactly the development set's training crops
(`data.train_on_val` false: validated on its source-disjoint validation split, so the x axis is
what the model trained on). `data.path` is set by the sweep, once per training size."""

from configs import study


def get_config():
  config = study.get_config()
  config.models = ["cnn2_b32", "wrn_cpu", "wrn_small"]
  config.data.source = "svhn"  # the study's HDF5 layout, which benchmarks/real_digits.py writes
  config.data.train_on_val = False
  return config
