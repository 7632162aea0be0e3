"""The study's CNN1: its batch size, epochs and learning rate."""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = "cnn1"
  config.train.epochs = 20
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  return config
