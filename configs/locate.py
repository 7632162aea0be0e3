"""Find the house number in a whole photo (issue 31), offline: the small number reader's trunk
with a box head (config.task=locate, svhn_jax/tasks/locate.py) on generated photos.

The synthetic photos are made once into the cache in SVHN format 1's layout, 24,000 / 3,000
(seed 0) as configs/numbers.py's but in the generator's "scene" style
(config.data.synthetic.photo_style, `synthetic_photos.SCENE_STYLE`): the number covers 10-40% of
the photo's width and 15-60% of its height, anywhere in it, with more clutter lines and strings
of letters (the number task's photos: 20-80% and 30-85%; SVHN's four sample photos 17-33% of
the width); 2,000 training photos are carved off for validation. Each photo is letterboxed whole to
54x54 (aspect ratio kept, padded) and the label is the box around all its digits as shares of that
square; each training photo also gives one zoomed view (config.data.locate.zoom_views=1: a window
1.5-5x the number's size around it, letterboxed the same way), so that the same model refines its
box in a second pass on a window around the first box (predict --refine_passes, default 1);
the model's 5 outputs are the box (its centre and size) and a predicted IoU as its confidence;
the loss is DETR's mix of smooth-L1 and 1 - GIoU (arXiv 2005.12872; Rezatofighi et al. 2019)
plus the confidence's cross-entropy. test_metrics.json: mean IoU, the shares with IoU
>= 0.5 ('accuracy') and >= 0.7.

Counted in steps as configs/numbers.py (2,000 of batch 128, a 100-step warm-up, validation every
250): a step costs about what the small reader's does (the same trunk on 54x54 inputs, 0.56
CPU-s measured there), so it fits the same 15 minutes on 2 cores. On SVHN itself:

  python -m svhn_jax.main --config=configs/locate.py --config.data.source=svhn_full \\
      --config.data.path=DIR   # DIR holds train.tar.gz and test.tar.gz

and on the real-number development set: python -m benchmarks.real_numbers --out=DIR, then
--config.data.path=DIR as above. Then read whole photos with a reader run:
python -m svhn_jax.predict --workdir=READER --locator=LOCATOR photo.png.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.task = "locate"
  config.model.name = "multidigit"
  config.model.reader.size = "small"
  config.data.source = "synthetic"
  config.data.synthetic.train = 24_000
  config.data.synthetic.test = 3_000
  config.data.synthetic.photo_style = "scene"
  config.data.val_size = 2_000
  # One zoomed view of each training photo's number besides the whole photo, so that the same
  # model refines its box on a second look at a window around it (two passes, tasks/locate.py).
  config.data.locate.zoom_views = 1
  config.train.epochs = None
  config.train.total_steps = 2_000
  config.train.warmup_steps = 100
  config.train.eval_every_steps = 250
  config.train.batch_size = 128
  config.train.learning_rate = 2e-3
  config.train.schedule = "onecycle"
  config.train.warmup_epochs = 0.0
  config.train.eval_batch_size = 128
  return config
