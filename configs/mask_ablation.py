"""The mask ablation: CNN2 on raw inputs against background-normalized, masked inputs."""

from configs import study


def get_config():
  config = study.get_config()
  config.models = ["cnn2"]
  return config
