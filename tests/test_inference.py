"""The one inference path: chunked logits, a trained run loaded from its workdir, and the predict
CLI, which says what the run's own evaluation says."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import official_files
from support import SHARED_DATA, read_json, run_cli, tiny_config, tiny_dataset
from svhn_jax import images, inference, models, predict, recipes, steps, tasks, train
from svhn_jax.errors import CheckpointError, ConfigError


def weights(name: str, seed: int = 0):
  model = models.create_model(name, seed=seed)
  graphdef, state = steps.init_state(model, recipes.adam(1e-3, 1e-7))
  return graphdef, state.params, state.batch_stats


def test_the_chunk_size_changes_no_logit():
  """70 images in 5 chunks of 16 (the last padded) and in one chunk of 128."""
  graphdef, params, stats = weights("cnn2")
  pixels = np.random.default_rng(1).integers(0, 256, (70, 32, 32), dtype=np.uint8)
  small, large = (inference.predict_logits(graphdef, params, stats, pixels, batch_size=b)
                  for b in (16, 128))
  assert small.shape == large.shape == (70, 10)
  np.testing.assert_allclose(small, large, rtol=1e-5, atol=1e-5)


def test_a_seed_axis_gives_each_seeds_logits():
  (graphdef, *a), (_, *b) = weights("ann2", seed=3), weights("ann2", seed=4)
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), a, b)
  pixels = np.random.default_rng(1).integers(0, 256, (20, 32, 32), dtype=np.uint8)
  both = inference.predict_logits(graphdef, *stacked, pixels, batch_size=8, seed_axis=True)
  assert both.shape == (2, 20, 10)
  for i, one in enumerate((a, b)):
    np.testing.assert_allclose(both[i], inference.predict_logits(graphdef, *one, pixels,
                                                                 batch_size=8),
                               rtol=1e-5, atol=1e-6)


def test_cnns_infer_in_cache_sized_chunks_on_the_cpu():
  assert inference.inference_chunk(2048, "cnn1") == inference.CPU_CNN_INFERENCE_CHUNK == 128
  assert inference.inference_chunk(50, "cnn2") == 50
  assert inference.inference_chunk(2048, "ann1") == 2048


@pytest.mark.parametrize("preprocess", ["raw", "mask"])
def test_a_loaded_run_reproduces_its_test_accuracy(finished_run, preprocess):
  workdir = finished_run("ann1", preprocess)
  run = inference.load_run(workdir)
  assert run.config.data.preprocess == preprocess and (run.mask is None) == (preprocess == "raw")
  test = tiny_dataset().test
  probs = inference.predict_probs(run, test.images)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
  report = read_json(workdir / "test_metrics.json")
  assert float((probs.argmax(-1) == test.labels).mean()) == report["accuracy"]


def test_output_lines():
  task = tasks.get("digit")
  answers = [{"digit": 1, "probability": 0.7, "probabilities": [0.1, 0.7, 0.2] + [0.0] * 7}]
  assert predict.lines(task, ["a.png"], answers, False) == ["a.png: 1 (70.0%)"]
  record = json.loads(predict.lines(task, ["a.png"], answers, True)[0])
  assert (record["file"], record["digit"], record["probability"]) == ("a.png", 1, 0.7)
  assert record["probabilities"] == [0.1, 0.7, 0.2] + [0.0] * 7


def test_the_cli_prints_each_files_digit_and_probability(finished_run, tmp_path):
  """Colour files of the study's size and another: what predict prints is the loaded run's
  answer for each file's crop."""
  workdir = finished_run("ann1")
  rgb = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  paths = []
  for i in range(3):
    paths.append(tmp_path / f"crop{i}.png")
    Image.fromarray(rgb[i]).save(paths[-1])
  result = run_cli("svhn_jax.predict", f"--workdir={workdir}", "--json", *map(str, paths))
  assert result.returncode == 0, result.stderr
  records = [json.loads(line) for line in result.stdout.splitlines()]
  assert [r["file"] for r in records] == [str(p) for p in paths]
  expected = inference.predict_probs(inference.load_run(workdir),
                                     np.stack([images.load_crop(p) for p in paths]))
  assert [r["digit"] for r in records] == expected.argmax(axis=1).tolist()
  assert [r["probability"] for r in records] == pytest.approx(expected.max(axis=1), abs=1e-6)
  assert [r["probabilities"] for r in records] == pytest.approx(expected, abs=1e-6)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="the shared SVHN samples are not here")
def test_a_whole_photo_becomes_one_crop_of_the_studys_size():
  crop = images.load_crop(SHARED_DATA / "house_numbers" / "2.png")
  assert crop.shape == (32, 32) and crop.dtype == np.float32
  assert 0 <= crop.min() < crop.max() <= 255


def test_saved_config_reads_an_old_config_json(copied_run):
  workdir = copied_run("ann1")
  tree = read_json(workdir / "config.json")
  tree["train"]["scan_epoch"] = "auto"
  (workdir / "config.json").write_text(json.dumps(tree))
  assert inference.saved_config(workdir).train.scan_epoch is None


def test_workdirs_that_hold_no_usable_run(copied_run, tmp_path):
  with pytest.raises(CheckpointError, match=r"nope: no such folder; expected the workdir"):
    inference.saved_config(tmp_path / "nope")
  with pytest.raises(CheckpointError, match=r"holds no trained run \(config\.json and "):
    inference.saved_config(tmp_path)
  workdir = copied_run("ann1", "mask")
  (workdir / "mask.npy").unlink()
  with pytest.raises(CheckpointError, match=r"mask\.npy: no such file; a masked run keeps"):
    inference.load_run(workdir)
  shutil.rmtree(workdir / "checkpoints")
  (workdir / "checkpoints").mkdir()
  with pytest.raises(CheckpointError, match=r"checkpoints is empty: the run saved no epoch"):
    inference.load_run(workdir)
  tree = read_json(workdir / "config.json")
  tree["train"]["plateau"]["factor"] = 2.0
  (workdir / "config.json").write_text(json.dumps(tree))
  with pytest.raises(ConfigError, match=r"^config\.train\.plateau\.factor=2\.0: expected"):
    inference.saved_config(workdir)
  (workdir / "config.json").write_text("{not json")
  with pytest.raises(CheckpointError, match=r"config\.json is not the JSON config a run writes"):
    inference.saved_config(workdir)


def test_a_colour_run_predicts_colour_crops(tmp_path):
  """A run trained with config.data.color=rgb is rebuilt with 3 input channels to predict."""
  folder = tmp_path / "svhn"
  folder.mkdir()
  for name, count in (("train", 100), ("test", 20)):
    labels = np.arange(count) % 10
    official_files.write_cropped_mat(folder / f"{name}_32x32.mat",
                                     official_files.drawn_crops(labels, seed=count),
                                     np.where(labels == 0, 10, labels))
  config = tiny_config("ann1", folder, epochs=1)
  config.data.source, config.data.color = "svhn_cropped", "rgb"
  config.data.val_size, config.data.cache_dir = 20, str(tmp_path / "cache")
  report = train.train_and_evaluate(config, tmp_path / "run")
  run = inference.load_run(tmp_path / "run")
  crops = official_files.drawn_crops(np.arange(20) % 10, seed=20)
  probs = inference.predict_probs(run, crops)
  assert probs.shape == (20, 10)
  assert np.mean(probs.argmax(-1) == np.arange(20) % 10) == report["accuracy"]
