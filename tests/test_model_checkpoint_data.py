"""Checkpoint round trips and failures, and the three data-set layouts."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from model_server.checkpoint import CheckpointError, ModelCard, load_model, read_checkpoint
from model_server.training.data import DataError, FaceSet, ferplus_to_soft_labels, load_faces
from model_server.networks import create_model
from model_helpers import tiny_checkpoint, write_fer_csv


def test_checkpoint_round_trip_rebuilds_the_model_from_the_file_alone(tmp_path):
    path = tiny_checkpoint(tmp_path / "m.pt")
    model, card = load_model(path)
    reference = create_model("vgg_tiny")
    reference.load_state_dict(read_checkpoint(path)["state_dict"])
    x = torch.randn(1, 1, 40, 40)
    assert torch.equal(model(x), reference.eval()(x))
    assert card.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert card.preprocessing.input_size == 40
    assert json.loads(card.to_json())["format_version"] == 1


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    good = tiny_checkpoint(tmp_path / "good.pt").read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError):
        load_model(path)


def test_pickled_whole_model_is_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save(create_model("vgg_tiny"), path)
    with pytest.raises(CheckpointError):
        load_model(path)


def test_checkpoint_whose_card_mismatches_its_weights_is_refused(tmp_path):
    path = tiny_checkpoint(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    card = ModelCard.from_json(payload["card"])
    card.architecture = "resnet18"
    payload["card"] = card.to_json()
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match"):
        load_model(path)


def test_csv_loader_reads_pixels_labels_and_splits(tmp_path):
    faces = load_faces(write_fer_csv(tmp_path / "fer2013.csv", rows_per_split=(14, 7, 7)))
    assert faces.images.shape == (28, 48, 48) and faces.images.dtype == np.uint8
    assert [len(faces.split(s)) for s in ("Training", "PublicTest", "PrivateTest")] == [14, 7, 7]
    assert set(faces.split("Training").labels) == set(range(7))


def test_csv_with_wrong_pixel_count_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(DataError, match=":2: expected 2304 pixels"):
        load_faces(path)


@pytest.mark.parametrize("layout", [("train", "test"), ("Training", "PublicTest"), (None, None)])
def test_folder_loader_reads_kaggle_layouts(tmp_path, layout):
    train_name, test_name = layout
    rng = np.random.default_rng(0)
    for split in [train_name, test_name] if train_name else [None]:
        for class_name in ("happy", "Surprised", "anger", "not_an_emotion"):
            folder = tmp_path / split / class_name if split else tmp_path / class_name
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (96, 96), dtype=np.uint8)).save(folder / "a.png")
    faces = load_faces(tmp_path)
    assert faces.images.shape[1:] == (48, 48)
    per_split = 3  # happy, surprise, angry; the unknown folder is skipped
    assert sorted(faces.labels[:per_split].tolist()) == [0, 3, 5]
    if train_name:
        assert len(faces.split("Training")) == per_split
        assert len(faces) == 2 * per_split
    else:
        assert len(faces.split("Training")) == per_split


def test_npz_loader_with_ferplus_votes(tmp_path):
    rng = np.random.default_rng(0)
    count = 10
    votes = np.zeros((count, 10), np.uint8)
    votes[:, 1] = 8  # happiness
    votes[:, 7] = 2  # contempt → disgust
    votes[0] = 0
    votes[0, 9] = 10  # "not a face": no usable vote, falls back to the label
    path = tmp_path / "fer.npz"
    np.savez(path, images=rng.integers(0, 256, (count, 48, 48), dtype=np.uint8),
             labels=np.full(count, 6, np.int8), usage=np.array([0] * 6 + [1] * 2 + [2] * 2, np.uint8),
             ferplus_votes=votes, provenance=np.array([3] + [0] * 9, np.uint8))
    faces = load_faces(path)
    assert len(faces) == 9  # the inexact training row is dropped
    np.testing.assert_allclose(faces.soft_labels[0], [0, 0.2, 0, 0.8, 0, 0, 0])
    assert faces.fingerprint() == load_faces(path).fingerprint()
    raw = ferplus_to_soft_labels(votes.astype(np.float32), np.full(count, 6))
    np.testing.assert_allclose(raw[0], [0, 0, 0, 0, 0, 0, 1])


def test_bad_data_paths_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_faces(tmp_path / "missing.npz")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="expected a .npz"):
        load_faces(tmp_path / "x.txt")
    (tmp_path / "x.npz").write_bytes(b"not zip")
    with pytest.raises(DataError, match="not a FER2013 npz"):
        load_faces(tmp_path / "x.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_faces(tmp_path / "empty")


def test_faceset_split_keeps_soft_labels_aligned():
    faces = FaceSet(np.zeros((3, 48, 48), np.uint8), np.array([0, 1, 2]), np.array([0, 1, 0], np.uint8),
                    np.eye(7, dtype=np.float32)[[0, 1, 2]])
    training = faces.split("Training")
    assert training.labels.tolist() == [0, 2]
    assert training.soft_labels.argmax(axis=1).tolist() == [0, 2]
