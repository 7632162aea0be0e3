"""The offline default: CNN2 on a generated SVHN-like file, a few minutes on 2 CPU cores."""

from configs import cnn2


def get_config():
  config = cnn2.get_config()
  config.data.source = "synthetic"
  config.data.synthetic.train = 8_000
  config.data.synthetic.val = 2_000
  config.data.synthetic.test = 2_000
  config.train.epochs = 8
  return config
