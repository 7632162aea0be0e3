"""Data sources: where `config.data.source` points, and the loaders of SVHN's files.

`REGISTRY` maps each source name to its `Source` object (`base.Source`), imported on first use:
what the source gives (digit crops as `data.Dataset` splits through `digits`, and where it has
them the format-1 photo splits of the number task through `photos`) and where its data lives
(a given `config.data.path`, the cache, a download or a generated file). `sources.load` and
`sources.load_numbers` load through it; each task calls the one for its own data.

  svhn          the study's HDF5 file (`study_h5`), downloaded from Google Drive (`download`)
  synthetic     the offline generator's crops and photos (`synthetic`, `synthetic_photos`)
  svhn_cropped  SVHN format 2, 32x32 crops in .mat files (`cropped`)
  svhn_full     SVHN format 1, photos and digitStruct.mat in archives (`photos`, `digit_struct`)

The file formats: `sniff` (which kind a file is: the one first check of every loader),
`digit_struct` (format 1's boxes, read and written; `_hdf5_fast` its fast reader),
`content_cache` (the caches' keys and bounds), `numbers` (the number task's crops from photos),
`describe` (what `python -m svhn_jax.data inspect` reports).

To add a source: write a module with a `base.Source` subclass whose `digits` (and `photos`, for
whole house numbers) returns what its docstring says, and an instance of it:

  class Mine(base.Source):
    name = "mine"
    def digits(self, data_cfg):
      return data.Dataset(train, val, test), where   # uint8 (N, 32, 32), int32 (N,) 0..9
  SOURCE = Mine()

then name it on the command line as `--config.data.source=my_package.mine:SOURCE`, or add
`"mine": "my_package.mine:SOURCE"` below (tests/toy_source.py is such a source).

Import-light: config.py imports this module for the names; nothing here imports a loader.
"""

from svhn_jax import registry

REGISTRY = registry.Registry("data.source", kind="svhn_jax.datasets.base:Source", entries={
    "svhn": "svhn_jax.datasets.study_h5:SOURCE",
    "synthetic": "svhn_jax.datasets.synthetic:SOURCE",
    "svhn_cropped": "svhn_jax.datasets.cropped:SOURCE",
    "svhn_full": "svhn_jax.datasets.photos:SOURCE",
})
