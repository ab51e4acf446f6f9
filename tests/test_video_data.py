"""Labelled clips to a folder data set: RAVDESS names, calm handling, and actors never shared between splits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakes import FakePredictor
from model_server.training import video_data
from model_server.training.data import SPLITS, load_folder
from model_server.labels import EMOTIONS

ACTORS = [f"{n:02d}" for n in range(1, 11)]
CODES = ("01", "02", "03", "05")  # neutral, calm, happy, angry


def write_clip(path: Path, value: int, frames: int = 5, fps: int = 5) -> None:
    """A tiny one-colour MJPG clip (the fake model finds one face in any frame of at least 64 px)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (96, 80))
    for number in range(frames):
        writer.write(np.full((80, 96, 3), (value + 9 * number) % 256, np.uint8))
    writer.release()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """RAVDESS-named clips: ten actors, four emotions each, plus files the loader must skip."""
    root = tmp_path_factory.mktemp("ravdess")
    for actor in ACTORS:
        folder = root / f"Actor_{actor}"
        folder.mkdir()
        for code in CODES:
            write_clip(folder / f"02-01-{code}-01-01-01-{actor}.avi", value=int(actor) * 20 + int(code))
    write_clip(root / "03-01-03-01-01-01-01.avi", 50)  # audio-only modality: no face to learn from
    write_clip(root / "holiday.avi", 50)  # not a RAVDESS name
    return root


def test_ravdess_names_map_to_fer_labels():
    label = video_data.ravdess_label
    assert label(Path("03-01-06-01-02-01-12.mp4")) is None  # audio-only
    assert label(Path("01-01-06-01-02-01-12.mp4")) == video_data.ClipLabel("fear", "actor12")
    assert label(Path("02-01-08-02-01-02-03.mp4")) == video_data.ClipLabel("surprise", "actor03")
    assert label(Path("02-01-02-01-01-01-01.mp4")).emotion is None  # calm is dropped by default
    assert label(Path("02-01-02-01-01-01-01.mp4"), calm="neutral").emotion == "neutral"
    assert label(Path("02-01-09-01-01-01-01.mp4")) is None and label(Path("clip.mp4")) is None
    assert set(video_data.RAVDESS_EMOTIONS.values()) - {"calm"} <= set(EMOTIONS)


def test_no_actor_appears_in_two_splits(clips, tmp_path):
    out = tmp_path / "faces"
    manifest = video_data.build_dataset(clips, out, FakePredictor(), fps=5, faces_per_clip=3)
    seen: dict[str, set[str]] = {}
    for image in out.glob("*/*/*.png"):
        split, actor = image.parent.parent.name, image.name.split("_")[0]
        seen.setdefault(actor, set()).add(split)
    assert sorted(seen) == [f"actor{a}" for a in ACTORS]
    assert all(len(splits) == 1 for splits in seen.values()), seen
    assert {split for splits in seen.values() for split in splits} == {"train", "val", "test"}
    assert manifest["subjects"] == {split: sorted(a for a, s in seen.items() if split in s)
                                    for split in ("train", "val", "test")}
    calm = [f"02-01-02-01-01-01-{actor}.avi" for actor in ACTORS]  # dropped by default
    assert sorted(manifest["skipped"]) == sorted([*calm, "03-01-03-01-01-01-01.avi", "holiday.avi"])
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_output_reads_as_a_training_folder(clips, tmp_path):
    out = tmp_path / "faces"
    video_data.build_dataset(clips, out, FakePredictor(), fps=5, faces_per_clip=2)
    faces = load_folder(out)
    assert faces.images.shape[1:] == (48, 48) and faces.images.dtype == np.uint8
    # Three usable emotions per actor (calm dropped), two faces per clip, ten actors.
    assert len(faces) == 10 * 3 * 2
    assert {EMOTIONS[i] for i in faces.labels} == {"neutral", "happy", "angry"}
    assert {SPLITS[i] for i in faces.usage} == set(SPLITS)


def test_the_same_seed_gives_the_same_splits_and_calm_can_be_neutral(clips, tmp_path):
    first = video_data.build_dataset(clips, tmp_path / "a", FakePredictor(), fps=5, faces_per_clip=1, calm="neutral")
    second = video_data.build_dataset(clips, tmp_path / "b", FakePredictor(), fps=5, faces_per_clip=1, calm="neutral")
    assert first["subjects"] == second["subjects"]
    assert sum(n for key, n in first["faces"].items() if key.endswith("/neutral")) == 10 * 2
    with pytest.raises(FileExistsError):
        video_data.build_dataset(clips, tmp_path / "a", FakePredictor())


def test_splits_keep_subjects_whole_for_any_count():
    for count in range(1, 30):
        subjects = [f"s{n}" for n in range(count)]
        split_of = video_data.assign_splits(subjects, seed=count)
        assert sorted(split_of) == sorted(subjects)
        if count >= 3:
            assert set(split_of.values()) == {"train", "val", "test"}


def test_cli_writes_the_folder(clips, tmp_path, capsys):
    out = tmp_path / "cli"
    assert video_data.main([str(clips), str(out), "--predictor", "fakes:create_fake_predictor",
                            "--fps", "5", "--faces-per-clip", "1", "--seed", "3"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["seed"] == 3 and sum(manifest["faces"].values()) == len(list(out.glob("*/*/*.png"))) == 30
    assert video_data.main([str(clips), str(out), "--predictor", "fakes:create_fake_predictor"]) == 2
