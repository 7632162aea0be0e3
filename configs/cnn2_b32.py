"""The study's CNN2 at batch 32, as its Keras cell trains it on a few thousand crops: at batch 128
its BatchNorm moving averages see too few updates on 3,000 crops and it stalls (issue 29), in
Keras as here. The baseline of experiments/recipe_sweep.py."""

from configs import cnn2


def get_config():
  config = cnn2.get_config()
  config.train.batch_size = 32
  return config
