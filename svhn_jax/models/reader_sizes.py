"""The number reader's sizes (`number_reader.multidigit`, config.model.reader.size), without
JAX, so that the config schema takes its list of names from here."""

from __future__ import annotations

from typing import NamedTuple


class Architecture(NamedTuple):
  """A reader's shape: per convolutional layer (features, max-pool stride: 2, 1, or 0 for no
  pooling), the square kernel side, the fully connected layers' units, and the input's
  space-to-depth factor (`SpaceToDepth`; 1: none)."""

  conv: tuple[tuple[int, int], ...]
  kernel: int
  dense: tuple[int, ...]
  space_to_depth: int = 1


class Residual(NamedTuple):
  """A residual reader's shape (`number_reader.residual_trunk`): the input's space-to-depth
  factor (1: none), the stem convolution's features, per group of the Wide ResNet's
  pre-activation blocks (features, blocks, the first block's stride), and the fully connected
  layers' units after the last map is flattened (every position kept, so that the heads see
  where each digit is)."""

  stem: int
  groups: tuple[tuple[int, int, int], ...]
  dense: tuple[int, ...]
  space_to_depth: int = 1


class Columns(NamedTuple):
  """A column reader's shape (`number_reader.column_trunk`, read with CTC): per convolutional
  layer (features, (pool rows, pool columns); (1, 1): no pooling), the square kernel side, the
  per-column layers' units (a convolution across 3 neighbouring columns of the last map's rows
  stacked as features), and the input's space-to-depth factor. Later pools halve the rows only,
  so that the map keeps a column every few pixels of the number."""

  conv: tuple[tuple[int, tuple[int, int]], ...]
  kernel: int
  dense: tuple[int, ...]
  space_to_depth: int = 1


SIZES: dict[str, Architecture | Residual | Columns] = {
    # 54x54x1 -> 27x27x4 -> 14 -> 14 -> 7 -> 4 pixels a side, 4 * 4 * 128 = 2,048 features.
    # Measured on 2 shared Xeon cores, with 512 dense units, per CPU-second of training: 357
    # crops, against 135 for the same widths with the first convolution at 54x54 and a pool
    # after every one; with 1,024 units, 333 (a 22,000-photo epoch in 66 CPU-seconds).
    "small": Architecture(conv=((32, 2), (64, 0), (96, 2), (128, 2)), kernel=3, dense=(1024,),
                          space_to_depth=2),
    # arXiv 1312.6082 section 5.1: 54 -> 27 -> 27 -> 14 -> 14 -> 7 -> 7 -> 4 -> 4 pixels a side,
    # 4 * 4 * 192 = 3,072 features.
    "paper": Architecture(conv=((48, 2), (64, 1), (128, 2), (160, 1), (192, 2), (192, 1),
                                (192, 2), (192, 1)), kernel=5, dense=(3072, 3072)),
    # Residual, for a CPU: 54x54 -> 27x27 (space-to-depth 2: no information lost, 27 columns
    # for five digits) -> 3x3 stem of 32 -> a pre-activation block of 32 at 27, of 64 at 14, of
    # 128 at 7 -> BN-ReLU -> 7 * 7 * 128 = 6,272 features -> 512 units. A training step of
    # 128 grey crops took 0.91-0.94 CPU-seconds against the small one's 0.56 (fastest of 6,
    # twice, on a shared 2-core AMD EPYC Zen 3 at load 3-4): 140 crops per CPU-second.
    "residual": Residual(stem=32, groups=((32, 1, 1), (64, 1, 2), (128, 1, 2)), dense=(512,),
                         space_to_depth=2),
    # Residual, for a GPU (the paper's scale, 16 M parameters): 54 -> stem of 64 at 54 -> two
    # blocks of 64 at 27, of 128 at 14, of 256 at 7 -> 7 * 7 * 256 = 12,544 -> 1,024 units.
    "residual_paper": Residual(stem=64, groups=((64, 2, 2), (128, 2, 2), (256, 2, 2)),
                               dense=(1024,)),
    # Columns read with CTC (CRNN, Shi, Bai and Yao 2015, arXiv 1507.05717), for a CPU: 54x54 ->
    # 27x27x4 -> 32 -> pool 2x2 -> 14x14 -> 64 -> 96 -> pool rows -> 7x14 -> 128 -> pool rows ->
    # 4x14x128: 14 columns, each of the 4 * 128 = 512 features -> 256 units (3 columns wide)
    # -> 11 classes (ten digits and CTC's blank). One digit classifier for every position.
    "ctc": Columns(conv=((32, (2, 2)), (64, (1, 1)), (96, (2, 1)), (128, (2, 1))), kernel=3,
                   dense=(256,), space_to_depth=2),
    # Columns for a GPU, at the paper's widths (arXiv 1312.6082 section 5.1's eight layers of
    # 5x5 convolutions, pooling rows only after the second stride-2 pool): 54 -> 27 -> 14 ->
    # rows 7 -> 4, 14 columns of 4 * 192 = 768 features -> 768 units -> 11 classes.
    "ctc_paper": Columns(conv=((48, (2, 2)), (64, (1, 1)), (128, (2, 2)), (160, (1, 1)),
                               (192, (2, 1)), (192, (1, 1)), (192, (2, 1)), (192, (1, 1))),
                         kernel=5, dense=(768,)),
}
