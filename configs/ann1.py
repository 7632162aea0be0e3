"""The study's ANN1: its batch size, epochs and learning rate."""

from configs import default


def get_config():
  config = default.get_config()
  config.model.name = "ann1"
  config.train.epochs = 20
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  return config
