"""The proxy's calibration (experiments/calibrate.py): the study's four models and the mask
ablation on the synthetic data at the study's sizes (42,000 / 60,000 / 18,000 crops, from
configs/default.py) and the configured generator version (default 5)."""

from configs import default, study


def get_config():
  config = study.get_config()
  config.data = study.experiment_data(default.get_config().data)
  config.data.source = "synthetic"
  return config
