"""Training, evaluation and prediction from the command line, on generated data."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model_server.training import data as data_module
from model_server.training import loop as train_module
from model_server.checkpoint import load_model
from model_helpers import FER_DATA, astronaut_rgb, tiny_checkpoint, write_fer_csv

ROOT = Path(__file__).resolve().parents[1]


def run_module(module, *args, timeout=300):
    """Run ``python -m module args`` from the project root and return the finished process."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_training_never_reads_private_test_and_resumes(tmp_path, monkeypatch):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(70, 14, 14))
    requested = []
    original_split = data_module.FaceSet.split
    monkeypatch.setattr(data_module.FaceSet, "split",
                        lambda self, name: requested.append(name) or original_split(self, name))
    out = tmp_path / "run"
    args = ["--data", str(data), "--out-dir", str(out), "--epochs", "2", "--batch-size", "32",
            "--architecture-kwargs", '{"widths": [8, 8, 8, 8]}', "--soft-label-weight", "0.3", "--mixup-alpha", "0.2"]
    config, resume = train_module.resolve_config(args)
    assert config.epochs == 2 and config.architecture_kwargs == {"widths": [8, 8, 8, 8]} and not resume
    train_module.train(config)
    assert "PrivateTest" not in requested and "PublicTest" in requested
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    model, card = load_model(out / "best.pt")
    assert card.training_config["soft_label_weight"] == 0.3
    assert card.metrics["public_test_accuracy"] == max(h["public_test_accuracy"] for h in history)
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    # Resuming a finished run trains no more epochs and keeps the history.
    train_module.train(config, resume=True)
    assert len(json.loads((out / "history.json").read_text())) == 2


def test_config_file_then_flags_override_defaults(tmp_path):
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps({"epochs": 7, "max_lr": 0.01}))
    config, _ = train_module.resolve_config(["--config", str(config_file), "--max-lr", "0.2", "--flip", "false"])
    assert (config.epochs, config.max_lr, config.flip) == (7, 0.2, False)
    config_file.write_text(json.dumps({"epochz": 7}))
    with pytest.raises(SystemExit):
        train_module.resolve_config(["--config", str(config_file)])


def test_evaluate_prints_a_json_report_and_draws_the_confusion_matrix(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 7, 21))
    checkpoint = tiny_checkpoint(tmp_path / "m.pt")
    result = run_module("model_server.evaluate", "--checkpoint", checkpoint, "--data", data, "--json",
                        "--out", tmp_path / "report", "--record", "--tta", "flip")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["split"] == "PrivateTest" and report["n"] == 21
    assert 0 <= report["accuracy"] <= report["top2_accuracy"] <= 1
    assert set(report["per_class"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert set(report["by_tta"]) == {"none", "flip", "zoom_flip", "five_crop_flip", "five_crop_zoom_flip"}
    assert 0 <= report["macro_f1"] <= 1
    assert report["tta"] == "flip" and report["by_tta"]["flip"]["accuracy"] == report["accuracy"]
    picture = Image.open(tmp_path / "report" / "confusion.png")
    assert picture.size[0] > 300
    assert json.loads((tmp_path / "report" / "report.json").read_text())["n"] == 21
    _, card = load_model(checkpoint)  # --record wrote the figures into the model card
    assert card.metrics["private_test_accuracy"] == report["accuracy"]
    assert card.metrics["evaluation"]["PrivateTest"]["by_tta"]["none"] == report["by_tta"]["none"]
    assert card.preprocessing.tta == "flip"


def test_evaluate_with_a_missing_checkpoint_says_so(tmp_path):
    result = run_module("model_server.evaluate", "--checkpoint", tmp_path / "none.pt", "--data", tmp_path)
    assert result.returncode == 2
    assert "checkpoint not found" in result.stderr and "Traceback" not in result.stderr


def test_predict_prints_faces_and_annotates(tmp_path):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut_rgb()).save(photo)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photo.read_bytes()[:500])
    checkpoint = tiny_checkpoint(tmp_path / "m.pt")
    result = run_module("model_server.predict", photo, broken, "--checkpoint", checkpoint,
                        "--annotate", tmp_path / "out.png")
    assert result.returncode == 1  # one of the two images was unreadable
    first, second = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert len(first["faces"]) == 1 and first["faces"][0]["top"] in first["faces"][0]["emotions"]
    assert set(first["faces"][0]["six_class"]) == {"angry", "fear", "happy", "sad", "surprise", "neutral"}
    assert "error" in second and "Traceback" not in result.stderr
    annotated = np.asarray(Image.open(tmp_path / "out-0.png"))
    assert annotated.shape == astronaut_rgb().shape and not np.array_equal(annotated, astronaut_rgb())


def test_predict_face_only_reads_each_cropped_face_whole(tmp_path):
    crop = tmp_path / "crop.png"
    Image.fromarray(np.full((40, 48), 120, np.uint8)).save(crop)  # too small and too plain to detect anything
    checkpoint = tiny_checkpoint(tmp_path / "m.pt")
    searched, whole = (json.loads(run_module("model_server.predict", crop, "--checkpoint", checkpoint, *flags).stdout)
                       for flags in ((), ("--face-only",)))
    assert searched["faces"] == []
    assert [face["box"] for face in whole["faces"]] == [{"x": 4, "y": 0, "w": 40, "h": 40}]


def test_predict_with_a_corrupt_checkpoint_says_so(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    result = run_module("model_server.predict", tmp_path / "x.png", "--checkpoint", bad)
    assert result.returncode == 2 and "corrupt" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.data
@pytest.mark.skipif(not FER_DATA.exists(), reason=f"FER2013 not found at {FER_DATA}")
def test_shipped_model_reaches_69_percent_on_private_test():
    # Every TTA mode of the four-network ensemble, from its 12 distinct views of 3,589 faces: minutes of CPU.
    result = run_module("model_server.evaluate", "--data", FER_DATA, "--split", "PrivateTest", "--json",
                        "--no-robustness", timeout=1200)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["n"] == 3589
    assert report["accuracy"] >= 0.69


def test_training_joins_fer2013_with_exported_corrections(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(21, 7, 7))
    corrections = tmp_path / "corrections"
    for index, emotion in enumerate(["sad", "sad", "happy"]):
        (corrections / emotion).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((60, 60), index * 80, np.uint8)).save(corrections / emotion / f"{index}.png")
    joined = data_module.load_sources(f"{data},{corrections}")
    assert len(joined.split("Training")) == 24
    assert joined.split("Training").labels[-3:].tolist() == [3, 4, 4]  # folder order: happy, sad, sad
    out = tmp_path / "run"
    config, _ = train_module.resolve_config(["--data", f"{data},{corrections}", "--out-dir", str(out),
                                             "--epochs", "1", "--architecture-kwargs", '{"widths": [8, 8, 8, 8]}'])
    train_module.train(config)
    assert (out / "best.pt").exists()


def test_cpu_bfloat16_training_runs_the_network_in_bfloat16_and_keeps_float32_weights(tmp_path, monkeypatch):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(21, 7, 7))
    config, _ = train_module.resolve_config(["--data", str(data), "--out-dir", str(tmp_path / "run"), "--epochs", "1",
                                             "--architecture-kwargs", '{"widths": [8, 8, 8, 8]}',
                                             "--cpu-bfloat16", "true", "--device", "cpu"])
    seen = []
    original_build = train_module.build_run

    def build_and_watch(*args, **kwargs):
        run = original_build(*args, **kwargs)
        run.model.register_forward_hook(lambda module, inputs, output: seen.append((module.training, output.dtype)))
        return run

    monkeypatch.setattr(train_module, "build_run", build_and_watch)
    train_module.train(config)
    # Training batches run in bfloat16; PublicTest evaluation stays float32 (what serving computes).
    assert set(seen) == {(True, torch.bfloat16), (False, torch.float32)}
    model, card = load_model(tmp_path / "run" / "best.pt")
    assert card.training_config["cpu_bfloat16"] is True
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("native, warned", [(False, True), (True, False), (None, False)])
def test_cpu_bfloat16_on_a_cpu_without_native_bfloat16_warns(tmp_path, monkeypatch, capsys, native, warned):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(14, 7, 7))
    config, _ = train_module.resolve_config(["--data", str(data), "--out-dir", str(tmp_path / "run"), "--epochs", "1",
                                             "--architecture-kwargs", '{"widths": [8, 8, 8, 8]}',
                                             "--cpu-bfloat16", "true", "--device", "cpu"])
    monkeypatch.setattr(train_module, "cpu_has_native_bfloat16", lambda: native)
    train_module.build_run(config)
    assert ("--cpu-bfloat16 false" in capsys.readouterr().err) is warned


def test_training_without_a_validation_split_says_what_is_missing(tmp_path):
    folder = tmp_path / "only_train" / "happy"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(folder / "a.png")
    result = run_module("model_server.train", "--data", folder.parent, "--out-dir", tmp_path / "run")
    assert result.returncode == 2
    assert "PublicTest" in result.stderr and "Traceback" not in result.stderr


def test_init_from_starts_with_the_parent_weights_and_records_its_story(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(14, 7, 7))
    parent = tiny_checkpoint(tmp_path / "parent.pt")
    config, _ = train_module.resolve_config(["--data", str(data), "--out-dir", str(tmp_path / "run"), "--epochs", "1",
                                             "--max-lr", "0", "--init-from", str(parent)])
    child_path = train_module.train(config)
    child, card = load_model(child_path)
    parent_model, _ = load_model(parent)
    # With a zero learning rate only BatchNorm statistics move: the convolution weights are the parent's.
    assert all(torch.equal(a, b) for (name, a), (_, b) in zip(child.state_dict().items(),
                                                               parent_model.state_dict().items())
               if name.endswith("weight") and a.dim() == 4)
    assert card.training_config["parent"]["version"] == "test-tiny"
    mismatched, _ = train_module.resolve_config(["--data", str(data), "--out-dir", str(tmp_path / "run2"),
                                                 "--architecture", "resnet18", "--init-from", str(parent)])
    with pytest.raises(data_module.DataError, match="not the configured resnet18"):
        train_module.train(mismatched)
