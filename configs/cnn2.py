"""The study's CNN2: its batch size, epochs and learning rate."""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = "cnn2"
  config.train.epochs = 30
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  return config
