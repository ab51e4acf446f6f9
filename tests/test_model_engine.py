"""The engine behind the contract: decode, detect, crop, classify (batched), encode, on generated images and a real portrait."""

import threading

import numpy as np
import pytest
import torch

from model_server.api import AnalysisRequest, Box, FaceResult, Predictor
from model_server.errors import AnalysisError, UnsupportedImageError
from model_server.serving.batching import DynamicBatcher
from model_server.serving.classifier import EmotionClassifier
from model_server.serving.detector import HaarFaceDetector, square_box
from model_server.serving.engine import create_engine, to_gray
from model_server.serving.imaging import encode_image
from model_helpers import astronaut_rgb, tiny_checkpoint

# The astronaut's face in skimage's 512x512 portrait, measured by hand.
ASTRONAUT_FACE = Box(175, 65, 95, 95)


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    checkpoint = tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    engine = create_engine(checkpoint=str(checkpoint))
    yield engine
    engine.close()


def analyse(engine, image, **options):
    """Run one request through the contract."""
    return engine.analyze(AnalysisRequest(image, **options))


def test_box_refuses_empty_or_negative_sizes():
    with pytest.raises(ValueError):
        Box(0, 0, 0, 10)
    with pytest.raises(ValueError):
        Box(-1, 0, 5, 5)
    assert Box(0, 0, 10, 10).iou(Box(5, 0, 10, 10)) == pytest.approx(1 / 3)


def test_square_box_grows_and_clips_to_the_image():
    # 30 px tall + 10% per side = 36 px square around the centre (10, 25), cut at the left edge.
    assert square_box(Box(0, 10, 20, 30), margin=0.1, width=100, height=100) == Box(0, 7, 28, 36)
    assert square_box(Box(40, 40, 20, 20), margin=0.0, width=100, height=100) == Box(40, 40, 20, 20)
    assert square_box(Box(99, 99, 1, 1), margin=0.0, width=100, height=100) is None


def test_the_engine_satisfies_the_predictor_contract(tiny_engine):
    assert isinstance(tiny_engine, Predictor)
    assert tiny_engine.info.version == "test-tiny"


def test_the_detector_finds_the_astronauts_face():
    boxes = HaarFaceDetector().detect(astronaut_rgb().mean(axis=2).astype(np.uint8))
    assert len(boxes) == 1
    assert boxes[0].iou(ASTRONAUT_FACE) > 0.6


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7), (480, 640, 3), (64, 64, 4), (2000, 50, 3)])
def test_images_without_faces_give_no_faces_not_errors(tiny_engine, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    analysis = analyse(tiny_engine, image)
    assert analysis.faces == ()
    assert (analysis.height, analysis.width) == shape[:2]


def test_every_face_in_a_group_photo_is_found_and_classified(tiny_engine):
    face = astronaut_rgb()[40:200, 150:300]
    group = np.full((200, 480, 3), 128, np.uint8)
    group[20:180, 10:160], group[20:180, 170:320], group[20:180, 330:480] = face, face[:, ::-1], face
    analysis = analyse(tiny_engine, group)
    assert len(analysis.faces) == 3
    for face_result in analysis.faces:
        assert sum(face_result.probabilities) == pytest.approx(1, abs=1e-4)
        assert face_result.top in face_result.emotions
    centres = sorted(f.box.x + f.box.w / 2 for f in analysis.faces)
    assert centres[0] < 160 < centres[1] < 320 < centres[2]


def test_grayscale_and_colour_images_agree(tiny_engine):
    rgb = astronaut_rgb()
    gray = rgb.mean(axis=2).astype(np.uint8)
    colour_faces = analyse(tiny_engine, rgb).faces
    gray_faces = analyse(tiny_engine, gray).faces
    assert len(colour_faces) == len(gray_faces) == 1
    np.testing.assert_allclose(colour_faces[0].probabilities, gray_faces[0].probabilities, atol=0.05)


def test_the_shipped_model_sees_the_smiling_astronaut_as_happy():
    engine = create_engine(batching=False)
    faces = analyse(engine, encode_image(astronaut_rgb(), "PNG")).faces
    assert len(faces) == 1
    assert faces[0].top == "happy" and faces[0].emoji == "\U0001F604"
    assert faces[0].emotions["happy"] > 0.5
    assert engine.info.metrics["private_test_accuracy"] >= 0.69


def test_flip_tta_is_the_mean_of_a_face_and_its_mirror(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "t.pt")
    plain, tta = EmotionClassifier(checkpoint, tta="none"), EmotionClassifier(checkpoint, tta="flip")
    faces = [np.random.default_rng(seed).integers(0, 256, (60, 60), dtype=np.uint8) for seed in (1, 2)]
    expected = (plain.classify(faces) + plain.classify([face[:, ::-1].copy() for face in faces])) / 2
    np.testing.assert_allclose(tta.classify(faces), expected, atol=1e-5)


def test_five_crop_tta_averages_ten_views_and_differs_from_the_centre_crop(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "t.pt")
    classifier = EmotionClassifier(checkpoint, tta="five_crop_flip")
    face = np.random.default_rng(3).integers(0, 256, (48, 48), dtype=np.uint8)
    views = classifier.preprocessing.views(torch.zeros(1, 1, 48, 48), "five_crop_flip")
    assert views.shape == (10, 1, 40, 40)
    probabilities = classifier.classify([face])
    assert probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert not np.allclose(probabilities, EmotionClassifier(checkpoint, tta="flip").classify([face]))
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        EmotionClassifier(checkpoint, tta="twenty_crop").classify([face])


def test_zoom_tta_adds_the_whole_face_shrunk_to_the_crop_size():
    from model_server.preprocessing import Preprocessing

    prep = Preprocessing(resize=48, input_size=40, mean=0.0, std=1.0)
    face = torch.zeros(1, 1, 48, 48)
    face[..., :4, :] = 1.0  # a bright band above the centre crop: only the zoomed view can see it
    centre, zoomed, centre_mirror, zoomed_mirror = prep.views(face, "zoom_flip")
    assert centre.max() == 0 and centre_mirror.max() == 0
    assert zoomed[0, :3].mean() > 0.9 and zoomed[0, 5:].max() < 0.1
    assert torch.equal(zoomed_mirror, zoomed.flip(-1))
    assert prep.views(face, "five_crop_zoom_flip").shape == (12, 1, 40, 40)
    assert "zoom_flip" not in Preprocessing(resize=40, input_size=40).tta_modes()


def test_scoring_every_tta_mode_in_one_pass_matches_scoring_each_alone():
    from model_server.networks import create_model
    from model_server.preprocessing import Preprocessing
    from model_server.training.loop import predict_probabilities, predict_probabilities_by_mode

    torch.manual_seed(0)
    model = create_model("vgg_tiny", num_classes=7).eval()
    prep = Preprocessing(resize=48, input_size=40)
    # Random faces: no two views of one face look alike, so a view averaged into the wrong mode would show.
    images = torch.randint(0, 256, (6, 48, 48), dtype=torch.uint8)
    modes = list(prep.tta_modes())
    together = predict_probabilities_by_mode(model, images, prep, modes, batch_size=4)
    for mode in modes:
        alone = predict_probabilities(model, images, prep, batch_size=4, tta=mode)
        assert torch.allclose(together[mode], alone, atol=1e-5), mode
    assert not torch.allclose(together["none"], together["five_crop_zoom_flip"], atol=1e-4)
    with pytest.raises(ValueError, match="zoom_flip"):
        predict_probabilities_by_mode(model, images, Preprocessing(resize=40, input_size=40), ["zoom_flip"])


def test_batcher_answers_every_caller_with_its_own_rows_and_merges_batches():
    gate = threading.Event()

    def classify(crops):
        gate.wait(5)  # hold the first batch so the other callers queue up behind it
        return np.array([[float(c[0, 0])] for c in crops])

    batcher = DynamicBatcher(classify, max_batch=64, max_wait_ms=20)
    results = {}

    def call(value):
        results[value] = batcher.classify([np.full((2, 2), value), np.full((2, 2), value + 100)])

    threads = [threading.Thread(target=call, args=(v,)) for v in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    batcher.close()
    assert {v: r[:, 0].tolist() for v, r in results.items()} == {v: [v, v + 100] for v in range(8)}
    assert batcher.batches_run < 8


def test_a_failing_batch_answers_its_callers_and_the_batcher_lives_on():
    calls = []

    def classify(crops):
        calls.append(len(crops))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.zeros((len(crops), 7))

    batcher = DynamicBatcher(classify, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="boom"):
        batcher.classify([np.zeros((2, 2))])
    assert batcher.classify([np.zeros((2, 2))]).shape == (1, 7)
    batcher.close()


def test_face_result_top_and_emotions():
    result = FaceResult(Box(1, 2, 3, 4), Box(0, 0, 6, 6), (0.1, 0.0, 0.0, 0.2, 0.0, 0.6, 0.1))
    assert result.top == "surprise" and result.emotions["happy"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        FaceResult(Box(1, 2, 3, 4), Box(0, 0, 6, 6), (1.0,))


def test_shifted_crops_need_a_margin_around_the_centre_crop():
    from model_server.preprocessing import Preprocessing

    assert "five_crop_flip" in Preprocessing(resize=48, input_size=40).tta_modes()
    full_face = Preprocessing(resize=48, input_size=48)
    assert full_face.tta_modes() == ("none", "flip")  # and no zoomed view: the crop is the whole face
    assert full_face.views(torch.zeros(3, 1, 48, 48), "flip").shape == (6, 1, 48, 48)
    with pytest.raises(ValueError, match="48px crops of 48px faces"):
        full_face.views(torch.zeros(1, 1, 48, 48), "five_crop_flip")


def test_live_frames_use_the_cheaper_views_and_their_own_batcher(tiny_engine):
    jpeg = encode_image(astronaut_rgb(), "JPEG")
    live = analyse(tiny_engine, jpeg, mode="live", want_crops=True)
    [face] = live.faces
    runner = tiny_engine._runners["live"]
    # One named checkpoint serves both modes here, so live frames read it through the mirror views only.
    assert runner.tta == "flip"
    expected = runner.classifier.classify([face.crop], tta="flip")
    np.testing.assert_allclose(face.probabilities, expected[0], atol=1e-3)
    assert runner.batcher is not tiny_engine._runners["photo"].batcher


def test_live_frames_read_the_live_student_through_the_views_its_card_chose():
    engine = create_engine(batching=False)
    try:
        live, photo = engine._runners["live"], engine._runners["photo"]
        assert live.classifier is not photo.classifier
        face = np.full((48, 48), 128, np.uint8)
        face[28:34, 12:36] = 40  # a mouth-like bar, off the vertical axis so mirrored views differ
        face[10:14, 6:18] = 200
        for runner in (live, photo):
            card_views = runner.classifier.classify([face], tta=runner.classifier.preprocessing.tta)
            np.testing.assert_allclose(runner._classify_now([face]), card_views, atol=1e-6)
        assert not np.allclose(live._classify_now([face]), live.classifier.classify([face], tta="none"), atol=1e-4)
    finally:
        engine.close()


def test_the_analysis_carries_the_exact_crop_the_classifier_saw(tiny_engine):
    rgb = astronaut_rgb()
    [face] = analyse(tiny_engine, rgb, want_crops=True).faces
    assert face.crop.shape == (48, 48) and face.crop.dtype == np.uint8
    # The crop box is the detector's box squared with the margin, and the crop is that region at 48x48.
    assert face.crop_box == square_box(face.box, tiny_engine.config.crop_margin, 512, 512)
    classifier = tiny_engine._runners["photo"].classifier
    np.testing.assert_allclose(classifier.classify([face.crop])[0], face.probabilities, atol=1e-3)
    assert analyse(tiny_engine, rgb).faces[0].crop is None  # not asked for, not sent


def test_face_only_reads_the_largest_centred_square_without_detection(tiny_engine):
    blank = np.full((90, 120), 128, np.uint8)  # nothing a detector would call a face
    assert analyse(tiny_engine, blank).faces == ()
    [face] = analyse(tiny_engine, blank, face_only=True, want_crops=True).faces
    assert face.box == Box(15, 0, 90, 90)
    assert face.crop_box == square_box(face.box, tiny_engine.config.crop_margin, 120, 90)
    assert face.crop.shape == (48, 48)


def test_the_engine_decodes_bytes_and_returns_the_extras_asked_for(tiny_engine):
    answer = analyse(tiny_engine, encode_image(astronaut_rgb(), "PNG"), want_annotated=True, want_jpeg=True)
    assert (answer.width, answer.height) == (512, 512) and len(answer.faces) == 1
    assert answer.annotated_png.startswith(b"\x89PNG") and answer.jpeg.startswith(b"\xff\xd8")
    assert {"decode", "detect", "classify", "encode", "total"} <= set(answer.timings_ms)
    with pytest.raises(UnsupportedImageError):
        analyse(tiny_engine, b"GIF89a not really")
    with pytest.raises(AnalysisError):
        analyse(tiny_engine, np.zeros((4, 4), np.float32))


def test_faces_beyond_the_cap_are_counted_not_silently_dropped(tmp_path):
    engine = create_engine(checkpoint=str(tiny_checkpoint(tmp_path / "t.pt")), max_faces=2, batching=False)
    face = astronaut_rgb()[40:200, 150:300]
    group = np.full((200, 480, 3), 128, np.uint8)
    group[20:180, 10:160], group[20:180, 170:320], group[20:180, 330:480] = face, face[:, ::-1], face
    answer = analyse(engine, group)
    assert len(answer.faces) == 2 and answer.faces_omitted == 1


def test_a_request_past_its_deadline_is_refused_without_work(tiny_engine):
    from model_server.errors import ModelBusyError

    with pytest.raises(ModelBusyError):
        analyse(tiny_engine, astronaut_rgb(), deadline=1.0)


def test_a_live_request_for_images_gets_them_at_the_pictures_own_size(tiny_engine):
    big = encode_image(np.repeat(np.repeat(astronaut_rgb(), 2, axis=0), 2, axis=1), "JPEG")  # 1024x1024
    answer = analyse(tiny_engine, big, mode="live", want_jpeg=True, want_annotated=True)
    from PIL import Image
    import io

    assert (answer.width, answer.height) == (1024, 1024)
    assert Image.open(io.BytesIO(answer.jpeg)).size == (1024, 1024)
    assert Image.open(io.BytesIO(answer.annotated_png)).size == (1024, 1024)
    # Without those extras the same frame is decoded small, and boxes still come in full-size pixels.
    small = analyse(tiny_engine, big, mode="live")
    assert (small.width, small.height) == (1024, 1024)
    for face in small.faces:
        assert face.box.x + face.box.w <= 1024 and face.box.w > 100
