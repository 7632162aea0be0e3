"""Image files of every Pillow mode to the study's pixel units, each against hand-computed values,
and every problem with a file as one line naming it."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

from support import SHARED_DATA
from svhn_jax import images
from svhn_jax.errors import DataError

CROPS = SHARED_DATA / "svhn_crops_12.npz"
RNG = np.random.default_rng(0)
# Palette colours and their luma 0.299 R + 0.587 G + 0.114 B, rounded.
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30), (255, 255, 255), (0, 0, 0)]
PALETTE_GREY = [76, 150, 29, 18, 255, 0]


def seven(size: int = 64) -> np.ndarray:
  """A (size, size) uint8 drawing of a 7: 255 on its strokes, 0 elsewhere, no antialiasing."""
  canvas = Image.new("L", (size, size), 0)
  ImageDraw.Draw(canvas).line([(16, 12), (48, 12), (26, 54)], fill=255, width=6)
  return np.asarray(canvas)


def saved(tmp_path, image: Image.Image, name: str, **params):
  path = tmp_path / name
  image.save(path, **params)
  return path


def old_to_crop(grey: np.ndarray) -> np.ndarray:
  """predict.to_crop before this module: the reference the grey crops must keep matching."""
  h, w = grey.shape
  side = max(h, w)
  top, left = (side - h) // 2, (side - w) // 2
  square = np.pad(grey, ((top, side - h - top), (left, side - w - left)), mode="edge")
  resized = Image.fromarray(square.astype(np.float32)).resize((32, 32), Image.BILINEAR)
  return np.clip(np.asarray(resized, np.float32), 0, 255)


# 8-bit modes.


@pytest.mark.parametrize("name", ["l.png", "l.tif", "l.bmp", "l.gif"])
def test_8_bit_grey_is_read_as_it_is(tmp_path, name):
  grey = RNG.integers(0, 256, (9, 13), np.uint8)
  path = saved(tmp_path, Image.fromarray(grey), name)
  out = images.read_image(path)
  assert out.dtype == np.float32 and out.shape == (9, 13)
  np.testing.assert_array_equal(out, grey)
  np.testing.assert_array_equal(images.read_image(path, "rgb"), np.dstack([grey] * 3))


@pytest.mark.parametrize("name", ["rgb.png", "rgb.tif", "rgb.bmp", "rgb.webp"])
def test_rgb_is_pillows_luma_and_its_own_colours(tmp_path, name):
  rgb = RNG.integers(0, 256, (11, 7, 3), np.uint8)
  params = {"lossless": True} if name.endswith("webp") else {}
  path = saved(tmp_path, Image.fromarray(rgb), name, **params)
  np.testing.assert_array_equal(images.read_image(path),
                                np.asarray(Image.fromarray(rgb).convert("L")))
  luma = rgb @ np.array([0.299, 0.587, 0.114])
  np.testing.assert_allclose(images.read_image(path), luma, atol=0.5 + 1e-3)
  out = images.read_image(path, "rgb")
  assert out.dtype == np.float32 and out.shape == (11, 7, 3)
  np.testing.assert_array_equal(out, rgb)


def test_rgbx_drops_its_padding_band(tmp_path):
  rgb = RNG.integers(0, 256, (5, 6, 3), np.uint8)
  path = saved(tmp_path, Image.fromarray(rgb).convert("RGBX"), "rgbx.tif")
  np.testing.assert_array_equal(images.read_image(path, "rgb"), rgb)


@pytest.mark.parametrize("name", ["bits.png", "bits.tif", "bits.bmp"])
def test_bilevel_is_0_or_255(tmp_path, name):
  bits = RNG.integers(0, 2, (10, 12)).astype(bool)
  path = saved(tmp_path, Image.fromarray(bits), name)
  np.testing.assert_array_equal(images.read_image(path), np.where(bits, 255, 0))
  np.testing.assert_array_equal(images.read_image(path, "rgb")[..., 1], np.where(bits, 255, 0))


@pytest.mark.parametrize("name", ["p.png", "p.gif", "p.tif", "p.bmp"])
def test_palette_is_its_colours_luma(tmp_path, name):
  index = RNG.integers(0, len(PALETTE), (8, 9)).astype(np.uint8)
  palette = Image.fromarray(index, "P")
  palette.putpalette([c for colour in PALETTE for c in colour])
  path = saved(tmp_path, palette, name)
  np.testing.assert_array_equal(images.read_image(path), np.array(PALETTE_GREY)[index])
  np.testing.assert_array_equal(images.read_image(path, "rgb"), np.array(PALETTE)[index])


def test_cmyk_ycbcr_and_lab_files_go_through_rgb(tmp_path):
  # Hand-computed: full cyan ink leaves red (luma 76), no ink white, full black ink black.
  cmyk = Image.new("CMYK", (3, 1))
  cmyk.putdata([(0, 255, 255, 0), (0, 0, 0, 0), (0, 0, 0, 255)])
  path = saved(tmp_path, cmyk, "cmyk.tif")
  np.testing.assert_array_equal(images.read_image(path), [[76, 255, 0]])
  np.testing.assert_array_equal(images.read_image(path, "rgb"),
                                [[[255, 0, 0], [255, 255, 255], [0, 0, 0]]])
  # Y at full or none with neutral chroma (128) is white or black; LAB's L* likewise.
  for mode in ("YCbCr", "LAB"):
    image = Image.new(mode, (2, 1))
    image.putdata([(255, 128, 128), (0, 128, 128)])
    path = saved(tmp_path, image, f"{mode}.tif")
    assert Image.open(path).mode == mode
    np.testing.assert_allclose(images.read_image(path), [[255, 0]], atol=1)


def test_hsv_goes_through_rgb():
  hsv = Image.new("HSV", (3, 1))
  hsv.putdata([(0, 255, 255), (85, 255, 255), (0, 0, 255)])  # red, green, white
  np.testing.assert_array_equal(images.pixels(hsv), [[76, 150, 255]])
  np.testing.assert_array_equal(images.pixels(hsv, "rgb")[0, 0], [255, 0, 0])


# 16-bit, 32-bit and float modes.

LEVELS_16 = np.array([[0, 257, 514, 32896], [65535, 65278, 12850, 771]], np.uint16)
GREY_16 = np.array([[0, 1, 2, 128], [255, 254, 50, 3]], np.float32)


@pytest.mark.parametrize("mode,order,name", [("I;16", "<u2", "deep.png"),
                                             ("I;16", "<u2", "deep.tif"),
                                             ("I;16B", ">u2", "deep_b.tif"),
                                             ("I;16L", "<u2", "deep_l.tif")])
def test_16_bit_files_use_their_full_range(tmp_path, mode, order, name):
  # frombytes: Pillow's convert() between 16-bit modes clips to 0..255.
  image = Image.frombytes(mode, (4, 2), LEVELS_16.astype(order).tobytes())
  path = saved(tmp_path, image, name)
  assert Image.open(path).mode.startswith("I;16")
  np.testing.assert_array_equal(images.read_image(path), GREY_16)
  np.testing.assert_array_equal(images.read_image(path, "rgb"), np.dstack([GREY_16] * 3))


def test_16_bit_native_order_in_memory():
  native = Image.frombytes("I;16N", (4, 2), LEVELS_16.astype("=u2").tobytes())
  np.testing.assert_array_equal(images.pixels(native), GREY_16)


@pytest.mark.parametrize("values,expected", [
    ([[0.0, 0.5, 1.0, 0.25]], [[0, 127.5, 255, 63.75]]),  # 0..1: x 255
    ([[-1.0, 1.0, 3.0, 0.0]], [[0, 127.5, 255, 63.75]]),  # own min..max
    ([[0.0, 100.0, 200.0, 50.0]], [[0, 127.5, 255, 63.75]]),
    ([[0.5, 0.5]], [[127.5, 127.5]]),  # constant in 0..1: still x 255
    ([[7.0, 7.0]], [[7, 7]]),  # constant elsewhere: clipped
    ([[300.0, 300.0]], [[255, 255]]),
    ([[-2.0, -2.0]], [[0, 0]]),
])
def test_float_tiffs(tmp_path, values, expected):
  path = saved(tmp_path, Image.fromarray(np.array(values, np.float32)), "float.tif")
  assert Image.open(path).mode == "F"
  np.testing.assert_allclose(images.read_image(path), expected, rtol=1e-6)
  np.testing.assert_allclose(images.read_image(path, "rgb")[..., 2], expected, rtol=1e-6)


@pytest.mark.parametrize("values,expected", [
    ([[1000, 2000, 3000, 1500]], [[0, 127.5, 255, 63.75]]),
    ([[-70000, 0, 70000, -35000]], [[0, 127.5, 255, 63.75]]),
    ([[0, 2**31 - 1]], [[0, 255]]),
    ([[1000, 1000]], [[255, 255]]),  # constant: clipped
    ([[100, 100]], [[100, 100]]),
    ([[-5, -5]], [[0, 0]]),
])
def test_32_bit_integer_tiffs_stretch_their_own_range(tmp_path, values, expected):
  path = saved(tmp_path, Image.fromarray(np.array(values, np.int32)), "int.tif")
  assert Image.open(path).mode == "I"
  np.testing.assert_allclose(images.read_image(path), expected, rtol=1e-6)


def test_bug_report_float_and_int_tiffs_keep_their_digit(tmp_path):
  stroke = seven(32) > 0
  for name, values in [("f.tif", np.where(stroke, 0.9, 0.1).astype(np.float32)),
                       ("i.tif", np.where(stroke, 90000, 10000).astype(np.int32))]:
    crop = images.load_crop(saved(tmp_path, Image.fromarray(values), name))
    if name == "f.tif":
      np.testing.assert_allclose(crop[~stroke], 25.5, rtol=1e-6)
      np.testing.assert_allclose(crop[stroke], 229.5, rtol=1e-6)
    else:
      np.testing.assert_array_equal(crop, np.where(stroke, 255, 0))


# Transparency: composited over white.


def test_bug_report_black_digit_on_a_transparent_canvas_reads_black_on_white(tmp_path):
  alpha = seven()
  black = np.zeros((64, 64), np.uint8)
  files = {
      "rgba.png": Image.fromarray(np.dstack([black, black, black, alpha]), "RGBA"),
      "rgba.tif": Image.fromarray(np.dstack([black, black, black, alpha]), "RGBA"),
      "rgba.webp": Image.fromarray(np.dstack([black, black, black, alpha]), "RGBA"),
      "la.png": Image.fromarray(np.dstack([black, alpha]), "LA"),
      "la.tif": Image.fromarray(np.dstack([black, alpha]), "LA"),
  }
  pa = Image.new("P", (64, 64), 0)
  pa.putpalette([0, 0, 0])
  pa = pa.convert("PA")
  pa.putalpha(Image.fromarray(alpha))
  files["pa.tif"] = pa
  for name, image in files.items():
    params = {"lossless": True} if name.endswith("webp") else {}
    path = saved(tmp_path, image, name, **params)
    np.testing.assert_array_equal(images.read_image(path), 255 - alpha, err_msg=name)
    np.testing.assert_array_equal(images.read_image(path, "rgb"), np.dstack([255 - alpha] * 3),
                                  err_msg=name)
    crop = images.load_crop(path)
    assert crop[0, 0] == 255 and crop.min() < 60, name


def test_premultiplied_alpha_modes_in_memory():
  alpha = seven()
  black = np.zeros((64, 64), np.uint8)
  la = Image.fromarray(np.dstack([black, alpha]), "LA").convert("La")
  rgba = Image.fromarray(np.dstack([black, black, black, alpha]), "RGBA").convert("RGBa")
  for image in (la, rgba):
    np.testing.assert_array_equal(images.pixels(image), 255 - alpha)


def test_partial_alpha_blends_with_white(tmp_path):
  alpha = np.tile(np.arange(256, dtype=np.uint8), (2, 1))
  red = np.zeros((2, 256, 4), np.uint8)
  red[..., 0], red[..., 3] = 255, alpha
  path = saved(tmp_path, Image.fromarray(red, "RGBA"), "fade.png")
  a = alpha / 255
  np.testing.assert_allclose(images.read_image(path, "rgb"),
                             np.stack([np.full_like(a, 255), 255 * (1 - a), 255 * (1 - a)], -1),
                             atol=1)
  np.testing.assert_allclose(images.read_image(path), 255 - (255 - 76) * a, atol=1.5)


def test_opaque_alpha_is_the_plain_colour_image(tmp_path):
  rgb = RNG.integers(0, 256, (9, 10, 3), np.uint8)
  opaque = np.dstack([rgb, np.full((9, 10), 255, np.uint8)])
  path = saved(tmp_path, Image.fromarray(opaque, "RGBA"), "opaque.png")
  np.testing.assert_array_equal(images.read_image(path),
                                np.asarray(Image.fromarray(rgb).convert("L")))


def test_transparency_key_colours_become_white(tmp_path):
  stroke = seven() > 0
  # Palette: index 0 a black digit, index 1 a transparent red background (tRNS, or GIF's index).
  index = np.where(stroke, 0, 1).astype(np.uint8)
  for name, transparency in [("p.png", 1), ("p_bytes.png", b"\xff\x00"), ("p.gif", 1)]:
    palette = Image.fromarray(index, "P")
    palette.putpalette([0, 0, 0, 255, 0, 0])
    path = saved(tmp_path, palette, name, transparency=transparency)
    np.testing.assert_array_equal(images.read_image(path), np.where(stroke, 0, 255), name)
  # Grey and colour tRNS: one value or colour of the image is transparent.
  grey = Image.fromarray(np.where(stroke, 0, 9).astype(np.uint8))
  path = saved(tmp_path, grey, "l.png", transparency=9)
  np.testing.assert_array_equal(images.read_image(path), np.where(stroke, 0, 255))
  rgb = Image.fromarray(np.dstack([np.where(stroke, 0, 9).astype(np.uint8)] * 3))
  path = saved(tmp_path, rgb, "rgb.png", transparency=(9, 9, 9))
  np.testing.assert_array_equal(images.read_image(path, "rgb"),
                                np.dstack([np.where(stroke, 0, 255)] * 3))
  deep = Image.fromarray(np.where(stroke, 0, 1000).astype(np.uint16))
  path = saved(tmp_path, deep, "deep.png", transparency=1000)
  np.testing.assert_array_equal(images.read_image(path), np.where(stroke, 0, 255))


# Frames and orientation.


@pytest.mark.parametrize("name", ["anim.gif", "anim.png", "pages.tif", "anim.webp"])
def test_multi_frame_files_give_their_first_frame(tmp_path, name):
  first = Image.fromarray(255 - seven())
  second = Image.fromarray(seven())
  params = {"lossless": True} if name.endswith("webp") else {}
  path = saved(tmp_path, first, name, save_all=True, append_images=[second], **params)
  assert Image.open(path).n_frames == 2
  np.testing.assert_array_equal(images.read_image(path), 255 - seven())


@pytest.mark.parametrize("orientation,turn", [
    (1, lambda a: a), (2, np.fliplr), (3, lambda a: np.rot90(a, 2)), (4, np.flipud),
    (5, np.transpose), (6, lambda a: np.rot90(a, -1)), (7, lambda a: np.rot90(a, 2).T),
    (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
  grey = (np.arange(6, dtype=np.uint8).reshape(2, 3) * 40)
  exif = Image.Exif()
  exif[0x0112] = orientation
  path = saved(tmp_path, Image.fromarray(grey), "turned.png", exif=exif)
  np.testing.assert_array_equal(images.read_image(path), turn(grey))


def test_exif_orientation_of_a_jpeg_photo(tmp_path):
  grey = np.zeros((32, 64), np.uint8)
  grey[:, :32] = 255  # left half white
  exif = Image.Exif()
  exif[0x0112] = 6  # stored sideways: shown turned 90 degrees clockwise
  out = images.read_image(saved(tmp_path, Image.fromarray(grey), "photo.jpg", exif=exif))
  assert out.shape == (64, 32)
  assert out[:28].min() > 240 and out[36:].max() < 15  # the white half now on top


# Crops.


@pytest.mark.parametrize("shape", [(32, 32), (16, 32), (13, 32), (32, 5), (7, 3), (1, 1),
                                   (100, 37), (64, 64), (300, 120), (33, 31)])
def test_grey_crops_match_the_old_predict_to_crop(shape):
  grey = RNG.uniform(0, 255, shape).astype(np.float32)
  crop = images.to_crop(grey)
  assert crop.dtype == np.float32 and crop.shape == (32, 32)
  np.testing.assert_array_equal(crop, old_to_crop(grey))


def test_crop_widens_around_the_centre_with_edge_pixels():
  # 13 rows of 32: the square has side 32, so no resize; 9 rows repeat above, 10 below.
  grey = np.repeat((np.arange(13, dtype=np.float32) * 10)[:, None], 32, axis=1)
  grey[:, 5] = 255
  crop = images.to_crop(grey)
  expected_rows = np.r_[[0] * 9, np.arange(13) * 10, [120] * 10]
  np.testing.assert_array_equal(crop[:, 0], expected_rows)
  np.testing.assert_array_equal(crop[:, 5], 255)
  # 32 rows of 5 columns: 13 columns repeat on the left, 14 on the right.
  tall = np.tile(np.array([1, 2, 3, 4, 5], np.float32), (32, 1))
  np.testing.assert_array_equal(images.to_crop(tall)[0], [1] * 14 + [2, 3, 4] + [5] * 15)


def test_crop_resizes_a_ramp_to_its_pixel_centres():
  # 32 x 64 ramp 4 per column -> square 64 x 64 (rows repeated) -> 32 x 32: output column j
  # covers input columns 2j and 2j + 1, centred on 2j + 0.5, where the ramp is 8j + 2.
  ramp = np.tile(np.arange(64, dtype=np.float32) * 4, (32, 1))
  crop = images.to_crop(ramp)
  np.testing.assert_allclose(crop[:, 1:-1], np.tile(8 * np.arange(1, 31) + 2.0, (32, 1)),
                             atol=1e-3)


def test_colour_crops_are_each_channel_cropped_alone():
  rgb = RNG.uniform(0, 255, (20, 45, 3)).astype(np.float32)
  crop = images.to_crop(rgb)
  assert crop.dtype == np.float32 and crop.shape == (32, 32, 3)
  for c in range(3):
    np.testing.assert_array_equal(crop[..., c], old_to_crop(rgb[..., c]))
  overshoot = np.zeros((4, 4, 2), np.float32)
  overshoot[1:3, 1:3] = 255  # bilinear ringing cannot leave 0..255
  assert images.to_crop(overshoot).min() >= 0 and images.to_crop(overshoot).max() <= 255


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 2, 2, 2)), np.zeros((0, 4))])
def test_crop_refuses_other_shapes(bad):
  with pytest.raises(ValueError, match="to_crop"):
    images.to_crop(bad)


def test_load_crop_in_grey_and_colour(tmp_path):
  rgb = RNG.integers(0, 256, (40, 24, 3), np.uint8)
  path = saved(tmp_path, Image.fromarray(rgb), "digit.png")
  np.testing.assert_array_equal(images.load_crop(path),
                                old_to_crop(np.asarray(Image.fromarray(rgb).convert("L"),
                                                       np.float32)))
  colour = images.load_crop(path, "rgb")
  assert colour.shape == (32, 32, 3)
  np.testing.assert_array_equal(colour[..., 2], old_to_crop(rgb[..., 2].astype(np.float32)))


@pytest.mark.skipif(not CROPS.exists(), reason="the shared SVHN samples are not here")
def test_real_colour_crops_become_the_studys_greyscale(tmp_path):
  crops = np.load(CROPS)
  for k, (rgb, grey) in enumerate(zip(crops["X_rgb"], crops["X_grey"])):
    path = saved(tmp_path, Image.fromarray(rgb), f"{k}.png")
    np.testing.assert_array_equal(images.load_crop(path), grey)
    np.testing.assert_array_equal(images.load_crop(path, "rgb"), rgb)


# Errors.


def png_chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def one_line_error(path, match: str) -> str:
  with pytest.raises(DataError, match=match) as caught:
    images.read_image(path)
  message = str(caught.value)
  assert "\n" not in message and str(path) in message
  return message


def test_missing_files_folders_and_non_images(tmp_path):
  one_line_error(tmp_path / "missing.png", "no such file")
  (tmp_path / "folder.png").mkdir()
  one_line_error(tmp_path / "folder.png", "is a folder")
  (tmp_path / "notes.png").write_text("not an image\nat all")
  one_line_error(tmp_path / "notes.png", "not an image")
  (tmp_path / "empty.jpg").write_bytes(b"")
  one_line_error(tmp_path / "empty.jpg", "not an image")


def test_zero_dimension_images_are_refused(tmp_path):
  header = struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0)  # width 0, height 5, 8-bit grey
  (tmp_path / "flat.png").write_bytes(
      b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
      + png_chunk(b"IDAT", zlib.compress(b"\0" * 5)) + png_chunk(b"IEND", b""))
  one_line_error(tmp_path / "flat.png", "not an image")  # Pillow refuses it on opening
  for size in [(0, 4), (4, 0)]:
    with pytest.raises(ValueError, match="none to read"):
      images.pixels(Image.new("L", size))


@pytest.mark.parametrize("name,damage", [
    ("half.png", lambda data: data[:len(data) // 2]),
    ("half.jpg", lambda data: data[:len(data) // 2]),
    ("half.tif", lambda data: data[:len(data) // 2]),
    ("half.gif", lambda data: data[:len(data) // 2]),
    ("zeroed.png", lambda data: data[:100] + bytes(40) + data[140:]),
])
def test_damaged_and_truncated_files(tmp_path, name, damage):
  rgb = RNG.integers(0, 256, (40, 40, 3), np.uint8)
  path = saved(tmp_path, Image.fromarray(rgb).convert("P" if name.endswith("gif") else "RGB"),
               name)
  path.write_bytes(damage(path.read_bytes()))
  one_line_error(path, r"could not be read as an image \(damaged or cut short\?\)")


def test_unreadable_files(tmp_path, monkeypatch):
  path = saved(tmp_path, Image.new("L", (4, 4)), "locked.png")

  def denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied", str(path))

  # Tests may run as root, which chmod cannot lock out.
  monkeypatch.setattr(Image, "open", denied)
  one_line_error(path, "permission denied")


def test_running_out_of_memory(tmp_path, monkeypatch):
  path = saved(tmp_path, Image.new("L", (4, 4)), "huge.png")

  def exhausted(self):
    raise MemoryError

  monkeypatch.setattr(ImageFile.ImageFile, "load", exhausted)
  one_line_error(path, "too large to decode in the free memory")


@pytest.mark.parametrize("limit,level", [(1000, "warning"), (500, "error")])
def test_decompression_bombs_name_the_pixels_and_the_limit(tmp_path, monkeypatch, limit, level):
  # 1,200 pixels: over the limit (Pillow warns) or over twice it (Pillow raises).
  path = saved(tmp_path, Image.new("RGB", (40, 30)), "bomb.png")
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
  message = one_line_error(path, "has 1,200 pixels, over the")
  assert f"{limit:,}" in message and "MAX_IMAGE_PIXELS" in message


def test_float_images_without_a_grey_level(tmp_path):
  values = np.array([[0.0, np.nan], [1.0, np.inf]], np.float32)
  one_line_error(saved(tmp_path, Image.fromarray(values), "nan.tif"), "NaN or infinite")


def test_unknown_colour_is_a_value_error(tmp_path):
  path = saved(tmp_path, Image.new("L", (4, 4)), "ok.png")
  for call in (lambda: images.read_image(path, "RGB"), lambda: images.load_crop(path, "gray"),
               lambda: images.pixels(Image.new("L", (4, 4)), "cmyk")):
    with pytest.raises(ValueError, match="color="):
      call()


# Photos: read_photo, which format-1 training reads with, and reading, which inspect reports.


def test_read_photo_is_read_image_in_whole_rgb_levels(tmp_path):
  rgb = RNG.integers(0, 256, (5, 7, 3)).astype(np.uint8)
  plain = images.read_photo(saved(tmp_path, Image.fromarray(rgb), "rgb.png"))
  assert plain.dtype == np.uint8
  np.testing.assert_array_equal(plain, rgb)
  deep = np.array([[0, 300, 65535, 129 * 257 + 129]], np.uint16)  # / 257: 0, 1.17, 255, 129.502
  got = images.read_photo(saved(tmp_path, Image.fromarray(deep), "deep.png"))
  np.testing.assert_array_equal(got, np.repeat(np.array([[0, 1, 255, 130]])[..., None], 3, -1))


def test_reading_names_the_rules_a_file_is_read_by(tmp_path):
  rgba = Image.fromarray(np.zeros((4, 6, 4), np.uint8))
  exif = Image.Exif()
  exif[0x0112] = 8  # EXIF orientation: stored turned a quarter
  assert images.reading(saved(tmp_path, rgba, "a.png", exif=exif)) == images.Reading(
      (4, 6), "PNG RGBA", ("turned upright by EXIF orientation 8",
                          "transparency composited over white"))
  plain = saved(tmp_path, Image.new("RGB", (3, 2)), "plain.jpg")
  assert images.reading(plain) == images.Reading((3, 2), "JPEG RGB", ())
  grey = saved(tmp_path, Image.fromarray(np.zeros((2, 2), np.uint16)), "g.png")
  assert images.reading(grey).rules == ("16-bit, divided by 257", "grey repeated in R, G and B")
  floats = saved(tmp_path, Image.fromarray(np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)),
                 "f.tiff")
  assert images.reading(floats).rules[0] == "32-bit or float, scaled to 0..255"


def test_reading_refuses_what_read_image_refuses(tmp_path):
  notes = tmp_path / "notes.png"
  notes.write_text("not an image")
  message = one_line_error(notes, "not an image")
  with pytest.raises(DataError) as caught:
    images.reading(notes)
  assert str(caught.value) == message
  with pytest.raises(DataError) as caught:
    images.reading(tmp_path / "in.tar.gz" / "1.png", io.BytesIO(b"not an image"))
  assert str(caught.value).startswith(f"{tmp_path / 'in.tar.gz' / '1.png'} is not an image")
