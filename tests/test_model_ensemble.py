"""The ensemble checkpoint, the distilled live student, temperature scaling and the new evaluation
figures, on tiny generated models and data (no FER2013, no training worth the name)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from model_server.checkpoint import CheckpointError, ModelCard, load_model, read_checkpoint, save_checkpoint
from model_server.networks import create_model
from model_server.preprocessing import Preprocessing, calibrate
from model_server.serving import classifier as classifier_module
from model_server.serving.classifier import EmotionClassifier
from model_server.training import augment
from model_server.training import loop as train_module
from model_server.training.calibration import choose_class_bias, fit_temperature
from model_server.training.data import DataError, ferplus_majority_labels
from model_server.training.ensemble import (build_ensemble, load_member, main as ensemble_main, score_subsets,
                                            worst_drop)
from model_server.training.evaluation import (ROBUSTNESS_CONDITIONS, calibrate_checkpoint, evaluate,
                                              ferplus_report)
from model_server.training.metrics import expected_calibration_error
from model_helpers import tiny_checkpoint, write_fer_csv

SMALL = {"widths": [8, 8, 8, 8]}


def small_checkpoint(path, seed=0, input_size=40, temperature=1.0):
    """A random narrow vgg_tiny with a complete card: fast enough to run many times per test."""
    torch.manual_seed(seed)
    model = create_model("vgg_tiny", num_classes=7, **SMALL).eval()
    card = ModelCard(architecture="vgg_tiny", architecture_kwargs=SMALL, version=f"small-{seed}",
                     preprocessing=Preprocessing(input_size=input_size), temperature=temperature)
    save_checkpoint(path, model, card)
    return path


def random_faces(count=3, size=56):
    return [np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8) for seed in range(count)]


def test_ensemble_checkpoint_averages_its_members_and_names_them_in_the_card(tmp_path):
    members = [small_checkpoint(tmp_path / f"m{seed}.pt", seed) for seed in range(3)]
    model, card = build_ensemble(members, "test-ensemble", "flip")
    save_checkpoint(tmp_path / "ensemble.pt", model, card, half=True)
    # One plain dictionary of tensors and JSON text: loadable without unpickling any code.
    payload = torch.load(tmp_path / "ensemble.pt", weights_only=True)
    assert all(value.dtype in (torch.float16, torch.int64) for value in payload["state_dict"].values())

    photo = EmotionClassifier(tmp_path / "ensemble.pt", tta="none")
    faces = random_faces()
    expected = np.mean([EmotionClassifier(path, tta="none").classify(faces) for path in members], axis=0)
    np.testing.assert_allclose(photo.classify(faces), expected, atol=2e-3)  # float16 storage
    assert photo.card.architecture == "ensemble" and photo.card.preprocessing.tta == "flip"
    recorded = photo.card.training_config
    assert [m["version"] for m in recorded["members"]] == ["small-0", "small-1", "small-2"]
    assert "mean of the members' softmax probabilities" in recorded["combination"]


def test_a_shipped_ensembles_members_can_join_a_new_ensemble_with_their_own_story(tmp_path):
    members = [small_checkpoint(tmp_path / f"m{seed}.pt", seed) for seed in range(3)]
    save_checkpoint(tmp_path / "old.pt", *build_ensemble(members[:2], "old", "flip"))
    unpacked, card = load_member(f"{tmp_path / 'old.pt'}#1")
    assert card.architecture == "vgg_tiny" and card.version == "small-1"
    faces = torch.randn(4, 1, 40, 40)
    single, _ = load_model(members[1])
    torch.testing.assert_close(unpacked(faces), single(faces))

    model, card = build_ensemble([f"{tmp_path / 'old.pt'}#0", members[2]], "new", "flip")
    assert [m["version"] for m in card.training_config["members"]] == ["small-0", "small-2"]
    with pytest.raises(CheckpointError, match="no member 2"):
        load_member(f"{tmp_path / 'old.pt'}#2")
    with pytest.raises(CheckpointError, match="no member"):
        load_member(f"{members[0]}#0")


def test_a_warm_restart_can_start_from_a_shipped_ensembles_member(tmp_path):
    members = [small_checkpoint(tmp_path / f"m{seed}.pt", seed) for seed in range(2)]
    save_checkpoint(tmp_path / "old.pt", *build_ensemble(members, "old", "flip"))
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(14, 7, 7))
    config, _ = train_module.resolve_config([
        "--data", str(data), "--out-dir", str(tmp_path / "run"), "--epochs", "1", "--max-lr", "0",
        "--architecture-kwargs", json.dumps(SMALL), "--init-from", f"{tmp_path / 'old.pt'}#1"])
    child, card = load_model(train_module.train(config))
    parent, _ = load_model(members[1])
    # A zero learning rate moves only BatchNorm statistics: the convolutions are member 1's, not member 0's.
    convolutions = [name for name, value in parent.state_dict().items() if value.dim() == 4]
    assert all(torch.allclose(child.state_dict()[name], parent.state_dict()[name], atol=1e-3)
               for name in convolutions)
    assert card.training_config["parent"]["version"] == "small-1"


def test_members_with_different_inputs_cannot_form_an_ensemble(tmp_path):
    members = [small_checkpoint(tmp_path / "a.pt", 0), small_checkpoint(tmp_path / "b.pt", 1, input_size=48)]
    with pytest.raises(CheckpointError, match="disagree"):
        build_ensemble(members, "mixed", "flip")


def test_live_and_photo_variants_load_their_own_shipped_files(tmp_path, monkeypatch):
    monkeypatch.setitem(classifier_module.SHIPPED, "photo", small_checkpoint(tmp_path / "photo.pt", 0))
    monkeypatch.setitem(classifier_module.SHIPPED, "live", small_checkpoint(tmp_path / "live.pt", 1))
    assert EmotionClassifier().card.version == "small-0"
    assert EmotionClassifier(variant="live").card.version == "small-1"
    with pytest.raises(ValueError, match="unknown classifier variant"):
        EmotionClassifier(variant="webcam")


def test_classify_serves_temperature_scaled_probabilities(tmp_path):
    raw = EmotionClassifier(small_checkpoint(tmp_path / "raw.pt", 0, temperature=1.0), tta="flip")
    soft = EmotionClassifier(small_checkpoint(tmp_path / "soft.pt", 0, temperature=2.0), tta="flip")
    faces = random_faces()
    expected = torch.from_numpy(raw.classify(faces)).log().div(2).softmax(dim=1).numpy()
    np.testing.assert_allclose(soft.classify(faces), expected, atol=1e-5)
    # A temperature above one softens every face's confidence but never changes its top label.
    assert (soft.classify(faces).max(axis=1) < raw.classify(faces).max(axis=1)).all()
    assert (soft.classify(faces).argmax(axis=1) == raw.classify(faces).argmax(axis=1)).all()


def test_cards_written_before_calibration_load_with_temperature_one(tmp_path):
    payload = read_checkpoint(tiny_checkpoint(tmp_path / "old.pt"))
    text = json.loads(payload["card"])
    text.pop("temperature")
    assert ModelCard.from_json(json.dumps(text)).temperature == 1.0


def over_confident_sample(temperature=1.8, n=3000, seed=0):
    """Labels drawn from known probabilities, and those probabilities sharpened by a known temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 7)) * 2
    honest = torch.from_numpy(logits).softmax(dim=1).numpy()
    labels = np.array([rng.choice(7, p=p / p.sum()) for p in honest])
    return torch.from_numpy(logits * temperature).softmax(dim=1).numpy(), labels


def test_fitted_temperature_recovers_the_over_confidence_and_lowers_ece():
    sharpened, labels = over_confident_sample()
    temperature = fit_temperature(sharpened, labels)
    assert temperature == pytest.approx(1.8, abs=0.15)
    calibrated = calibrate(torch.from_numpy(sharpened), temperature).numpy()
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(sharpened, labels) / 3


def test_ece_is_zero_when_confidence_matches_accuracy():
    probabilities = np.tile([0.75, 0.25, 0, 0, 0, 0, 0], (8, 1))
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0)
    assert expected_calibration_error(probabilities, np.ones(8, dtype=int)) == pytest.approx(0.75)


def test_calibration_writes_the_temperature_into_the_card_and_refuses_private_test(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 21, 7))
    checkpoint = small_checkpoint(tmp_path / "m.pt")
    fitted = calibrate_checkpoint(checkpoint, data)
    card = load_model(checkpoint)[1]
    assert (card.temperature, card.class_bias) == (fitted["temperature"], fitted["class_bias"])
    with pytest.raises(DataError, match="PublicTest only"):
        calibrate_checkpoint(checkpoint, data, split="PrivateTest")


def test_calibration_for_other_views_stores_them_with_the_fitted_temperature(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 21, 7))
    checkpoint = small_checkpoint(tmp_path / "m.pt")
    assert load_model(checkpoint)[1].preprocessing.tta != "zoom_flip"
    fitted = calibrate_checkpoint(checkpoint, data, tta="zoom_flip")
    card = load_model(checkpoint)[1]
    assert (card.preprocessing.tta, card.temperature) == ("zoom_flip", fitted["temperature"])
    with pytest.raises(DataError, match="not available"):
        calibrate_checkpoint(checkpoint, data, tta="twenty_crop")


def test_ferplus_majority_skips_faces_the_crowd_did_not_read_as_an_emotion():
    # FER+ columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
    votes = np.array([[0, 8, 2, 0, 0, 0, 0, 0, 0, 0],   # happy
                      [0, 0, 0, 0, 3, 1, 0, 4, 2, 0],   # disgust (contempt counts toward it) beats anger
                      [1, 0, 0, 0, 0, 0, 0, 0, 0, 9],   # not a face
                      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])  # no votes
    majority = ferplus_majority_labels(votes)
    assert majority.tolist() == [3, 1, -1, -1]
    probabilities = np.eye(7)[[3, 0, 0, 0]]
    assert ferplus_report(probabilities, majority) == {"n": 2, "accuracy": 0.5}
    assert ferplus_report(probabilities, None) is None


def test_reframing_at_scale_one_is_the_identity_and_tighter_framing_zooms_in():
    faces = torch.rand(2, 1, 48, 48)
    torch.testing.assert_close(augment.reframe(faces), faces, atol=1e-5, rtol=0)
    # A 0.5x box shows the central 24 px stretched to 48: its centre pixels come from the original centre.
    ramp = torch.arange(48.0).view(1, 1, 1, 48).expand(1, 1, 48, 48)
    zoomed = augment.reframe(ramp, framing=0.5)
    assert zoomed[0, 0, 0, 0] == pytest.approx(12, abs=0.5) and zoomed[0, 0, 0, -1] == pytest.approx(35, abs=0.5)


def test_evaluation_reports_calibration_ferplus_and_every_robustness_condition(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 14, 14))
    report = evaluate(small_checkpoint(tmp_path / "m.pt", temperature=1.5), data, "PublicTest", tta="none")
    assert report["calibration"]["temperature"] == 1.5
    assert report["ferplus"] is None  # a csv carries no FER+ votes
    assert set(report["robustness"]["accuracy"]) == set(ROBUSTNESS_CONDITIONS)
    assert report["robustness"]["worst_drop"] == max(report["robustness"]["drop"].values())
    # Robustness runs the evaluated views without the four shifted crops (ten conditions stay affordable).
    assert report["robustness"]["tta"] == "none"
    zoomed = evaluate(small_checkpoint(tmp_path / "m.pt"), data, "PublicTest", tta="five_crop_zoom_flip")
    assert (zoomed["tta"], zoomed["robustness"]["tta"]) == ("five_crop_zoom_flip", "zoom_flip")


def test_subset_search_prefers_the_most_accurate_then_the_smallest_and_cheapest():
    labels = np.array([0, 1, 2, 3])
    right, wrong = np.eye(7)[labels], np.eye(7)[[4, 4, 4, 4]]
    probabilities = {"a": {"flip": right, "five_crop_flip": right}, "b": {"flip": right, "five_crop_flip": right},
                     "c": {"flip": wrong, "five_crop_flip": wrong}}
    best = score_subsets(probabilities, labels, range(2, 4))[0]
    assert best["members"] == ["a", "b"] and best["tta"] == "flip" and best["accuracy"] == 1.0


def test_ensemble_command_chooses_members_fits_a_temperature_and_never_reads_private_test(tmp_path, monkeypatch):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 14, 7))
    members = [str(small_checkpoint(tmp_path / f"m{seed}.pt", seed)) for seed in range(3)]
    from model_server.training import data as data_module
    requested = []
    original_split = data_module.FaceSet.split
    monkeypatch.setattr(data_module.FaceSet, "split",
                        lambda self, name: requested.append(name) or original_split(self, name))
    out = tmp_path / "ensemble.pt"
    assert ensemble_main(["--candidates", *members, "--out", str(out), "--data", str(data),
                          "--min-members", "2", "--tta", "none"]) == 0
    assert "PrivateTest" not in requested and "PublicTest" in requested
    _, card = load_model(out)
    assert card.training_config["selection"]["split"] == "PublicTest"
    assert card.temperature == card.metrics["public_test_calibration"]["temperature"]


def test_worst_drop_is_the_averaged_members_largest_loss_under_any_condition():
    labels = np.array([0, 1, 0, 1])
    right, wrong = np.eye(2)[labels], np.eye(2)[1 - labels]
    half_wrong = np.vstack([right[:2], wrong[2:]])
    steady = {name: right for name in ROBUSTNESS_CONDITIONS}
    fragile = {**steady, "framing 0.8x": half_wrong * 0.9 + 0.05}
    conditions = {"steady": steady, "fragile": fragile}
    assert worst_drop(conditions, ["steady"], labels) == 0
    assert worst_drop(conditions, ["fragile"], labels) == pytest.approx(0.5)
    # Averaged with a steady member, the fragile one's confident mistakes still win half the time here.
    assert worst_drop(conditions, ["fragile", "steady"], labels) <= 0.5


def test_ensemble_command_with_a_robustness_limit_prefers_subsets_within_it(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 28, 7))
    members = [str(small_checkpoint(tmp_path / f"m{seed}.pt", seed)) for seed in range(3)]
    out = tmp_path / "ensemble.pt"
    assert ensemble_main(["--candidates", *members, "--out", str(out), "--data", str(data), "--min-members", "2",
                          "--tta", "none", "--max-robustness-drop", "0.1"]) == 0
    selection = load_model(out)[1].training_config["selection"]
    assert selection["max_robustness_drop"] == 0.1
    drops = [row["worst_robustness_drop"] for row in selection["table"]]
    within = [drop <= 0.1 for drop in drops]
    # Every subset within the limit ranks before every subset beyond it; the first row is the one shipped.
    assert within == sorted(within, reverse=True)


def test_ensemble_command_reuses_cached_candidate_probabilities_until_a_checkpoint_changes(tmp_path, monkeypatch):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 14, 7))
    members = [str(small_checkpoint(tmp_path / f"m{seed}.pt", seed)) for seed in range(3)]
    arguments = ["--candidates", *members, "--data", str(data), "--min-members", "2", "--tta", "none", "flip",
                 "--max-robustness-drop", "0.5", "--cache", str(tmp_path / "cache")]
    assert ensemble_main([*arguments, "--out", str(tmp_path / "first.pt")]) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3

    from model_server.training import ensemble as ensemble_module
    scored = []
    original = ensemble_module.load_member
    monkeypatch.setattr(ensemble_module, "load_member", lambda spec: scored.append(spec) or original(spec))
    assert ensemble_main([*arguments, "--out", str(tmp_path / "second.pt")]) == 0
    first, second = (load_model(tmp_path / name)[1] for name in ("first.pt", "second.pt"))
    assert first.training_config["selection"]["table"] == second.training_config["selection"]["table"]
    # No candidate was scored again: the only loads are build_ensemble's, of the members it keeps.
    assert scored == [member["source"] for member in second.training_config["members"]]

    small_checkpoint(tmp_path / "m1.pt", seed=7)  # retrained in place: its probabilities must be scored again
    scored.clear()
    assert ensemble_main([*arguments, "--out", str(tmp_path / "third.pt")]) == 0
    third = load_model(tmp_path / "third.pt")[1]
    assert scored == [members[1]] + [member["source"] for member in third.training_config["members"]]


def test_ensemble_cache_adds_robustness_conditions_to_a_candidate_scored_without_them(tmp_path, monkeypatch):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(7, 14, 7))
    members = [str(small_checkpoint(tmp_path / f"m{seed}.pt", seed)) for seed in range(2)]
    common = ["--candidates", *members, "--data", str(data), "--min-members", "1", "--max-members", "1",
              "--cache", str(tmp_path / "cache")]
    assert ensemble_main([*common, "--tta", "none", "--out", str(tmp_path / "quick.pt")]) == 0

    from model_server.training import ensemble as ensemble_module
    scored = []
    original_views = ensemble_module.predict_probabilities_by_mode
    original_conditions = ensemble_module.condition_probabilities
    monkeypatch.setattr(ensemble_module, "predict_probabilities_by_mode",
                        lambda *args: scored.extend(args[3]) or original_views(*args))
    monkeypatch.setattr(ensemble_module, "condition_probabilities",
                        lambda *args: scored.append(f"conditions {args[3]}") or original_conditions(*args))
    full = [*common, "--tta", "none", "flip", "--max-robustness-drop", "0.5"]
    assert ensemble_main([*full, "--out", str(tmp_path / "full.pt")]) == 0
    # Only what the quick run did not score: the mirror views, and the conditions under each mode's views,
    # once per candidate.
    assert sorted(scored) == ["conditions flip", "conditions flip", "conditions none", "conditions none",
                              "flip", "flip"]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2

    scored.clear()
    assert ensemble_main([*full, "--out", str(tmp_path / "again.pt")]) == 0
    assert scored == []
    first, again = (load_model(tmp_path / name)[1] for name in ("full.pt", "again.pt"))
    assert first.training_config["selection"]["table"] == again.training_config["selection"]["table"]


def test_student_distils_the_ensemble_and_records_its_teacher(tmp_path):
    data = write_fer_csv(tmp_path / "fer.csv", rows_per_split=(14, 7, 7))
    model, card = build_ensemble([small_checkpoint(tmp_path / f"m{s}.pt", s) for s in range(2)], "teacher-v", "flip")
    save_checkpoint(tmp_path / "teacher.pt", model, dataclasses.replace(card, temperature=1.3), half=True)
    config, _ = train_module.resolve_config([
        "--data", str(data), "--out-dir", str(tmp_path / "student"), "--epochs", "1", "--batch-size", "7",
        "--architecture-kwargs", json.dumps(SMALL), "--teacher", str(tmp_path / "teacher.pt"),
        "--distill-weight", "0.7"])
    _, student_card = load_model(train_module.train(config))
    teacher = student_card.training_config["teacher"]
    assert (teacher["version"], teacher["architecture"], teacher["temperature"]) == ("teacher-v", "ensemble", 1.3)


def test_distillation_targets_blend_the_teacher_after_label_smoothing():
    config = train_module.TrainConfig(label_smoothing=0.0, distill_weight=0.25)
    labels = torch.tensor([2])
    teacher = torch.full((1, 7), 1 / 7)
    targets = train_module.build_targets(labels, None, config, teacher)
    assert targets[0, 2] == pytest.approx(0.75 + 0.25 / 7)
    assert targets.sum() == pytest.approx(1.0)


def test_class_bias_gives_an_under_predicted_rare_class_its_margin_back():
    # Disgust (class 1) is rare in training and the model under-rates it: a third of its probability
    # went to angry (class 0). The prior correction should be chosen and recover disgust recall.
    training_labels = np.array([0] * 500 + [1] * 10 + [2] * 490)
    labels = np.array([0] * 40 + [1] * 20 + [2] * 40)
    probabilities = np.zeros((100, 7))
    probabilities[np.arange(100), labels] = 0.6
    probabilities[40:60, 0] = 0.7
    probabilities[40:60, 1] = 0.25
    probabilities[:40, 1] = 0.05
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    bias, table = choose_class_bias(probabilities, labels, training_labels)
    assert table[0]["tau"] == 0 and table[0]["recall"][1] == 0.0
    chosen = next(row for row in table if row["class_bias"] == bias)
    assert chosen["tau"] > 0 and chosen["recall"][1] == 1.0 and chosen["recall"][0] == 1.0


def test_the_card_serves_its_class_bias_before_the_temperature(tmp_path):
    path = small_checkpoint(tmp_path / "m.pt")
    payload = read_checkpoint(path)
    card = ModelCard.from_json(payload["card"])
    plain = EmotionClassifier(path, tta="none").classify(random_faces())
    card.class_bias, card.temperature = [0.0, 2.0, 0, 0, 0, 0, 0], 1.5
    payload["card"] = card.to_json()
    torch.save(payload, path)
    served = EmotionClassifier(path, tta="none").classify(random_faces())
    expected = torch.from_numpy(plain).log().add(torch.tensor(card.class_bias)).div(1.5).softmax(dim=1).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
