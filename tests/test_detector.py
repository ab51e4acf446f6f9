"""Face detectors on generated pictures of scikit-image's astronaut (no FER2013, no network)."""

from __future__ import annotations

import concurrent.futures

import cv2
import numpy as np
import pytest
from skimage import data

from model_server.api import Box
from model_server.serving.detector import (
    ALT, FRONTAL, HaarFaceDetector, Pass, PhotoFaceDetector, create_detector, make_view, suppress)

# The astronaut's face in skimage.data.astronaut(), as the frontal cascades box it.
FACE = Box(177, 66, 96, 96)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """The 512x512 astronaut portrait in grayscale."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)


@pytest.fixture(scope="module")
def photo() -> PhotoFaceDetector:
    """One photo detector for the module (loading cascades takes a moment)."""
    return create_detector("photo")


def centre(box: Box) -> np.ndarray:
    """A box's centre as an (x, y) array."""
    return np.array([box.x + box.w / 2, box.y + box.h / 2])


def tilted(gray: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The portrait rotated by ``angle`` degrees about the face's centre, on a larger grey canvas,
    and where the face's centre lands."""
    canvas = np.full((700, 700), 128, np.uint8)
    canvas[94:606, 94:606] = gray
    face_centre = centre(FACE) + 94
    matrix = cv2.getRotationMatrix2D(tuple(face_centre), angle, 1.0)
    return cv2.warpAffine(canvas, matrix, (700, 700), borderValue=128), face_centre


def test_a_tight_crop_of_the_face_is_found_by_the_photo_detector(photo, astronaut):
    # Brow to chin with a few pixels to spare, upscaled: the face fills the picture, as in an uploaded crop.
    crop = cv2.resize(astronaut[FACE.y - 4:FACE.y + FACE.h + 4, FACE.x - 4:FACE.x + FACE.w + 4], (312, 312))
    boxes = photo.detect(crop)
    assert len(boxes) == 1
    assert np.linalg.norm(centre(boxes[0]) - 156) < 30
    assert boxes[0].w > 150


def test_a_portrait_tilted_25_degrees_is_found_where_the_face_is(photo, astronaut):
    image, face_centre = tilted(astronaut, 25)
    assert HaarFaceDetector().detect(image) == []  # the upright cascade alone misses it
    boxes = photo.detect(image)
    assert len(boxes) == 1
    assert np.linalg.norm(centre(boxes[0]) - face_centre) < 20
    assert 0.7 < boxes[0].w / FACE.w < 1.4


@pytest.mark.parametrize("look", [Pass(FRONTAL, 400, angle=20), Pass(FRONTAL, 300, angle=-15, mirror=True, pad=0.2),
                                  Pass(FRONTAL, None, mirror=True)])
def test_a_view_maps_photo_points_to_where_the_warp_puts_them(astronaut, look):
    marked = np.zeros_like(astronaut)
    marked[300:304, 100:104] = 255  # a bright dot away from the centre
    view = make_view(marked, look)
    found = np.array(np.unravel_index(np.argmax(cv2.GaussianBlur(view.image, (5, 5), 0)), view.image.shape))[::-1]
    predicted = view.matrix @ np.array([101.5, 301.5, 1.0])
    assert np.linalg.norm(found - predicted) < 3


def test_a_mirrored_pass_reports_boxes_in_the_unmirrored_photo(astronaut):
    # The face is left of centre, so a box left unmirrored would land on the right.
    wide = np.full((512, 900), 128, np.uint8)
    wide[:, :512] = astronaut
    mirrored_only = PhotoFaceDetector(passes=(Pass(ALT, None, mirror=True, confirm=(FRONTAL,)),))
    boxes = mirrored_only.detect(wide)
    assert len(boxes) == 1
    assert np.linalg.norm(centre(boxes[0]) - centre(FACE)) < 10


def test_the_profile_cascade_runs_on_the_photo_and_its_mirror_image(photo):
    profiles = [look for look in photo.passes if "profile" in look.cascade]
    assert {look.mirror for look in profiles} == {False, True}


def test_suppression_merges_boxes_of_one_face_and_keeps_the_first():
    best, shifted = Box(100, 100, 80, 80), Box(110, 106, 76, 76)
    wider, elsewhere = Box(90, 95, 130, 110), Box(400, 80, 60, 60)  # a profile-like box; another face
    assert suppress([best, shifted, wider, elsewhere]) == [best, elsewhere]


def test_suppression_drops_a_small_hit_inside_a_face_but_keeps_faces_beside_it():
    large, inside = Box(100, 100, 200, 200), Box(230, 110, 30, 30)  # an eye-sized hit within the face
    beside, similar = Box(310, 40, 40, 40), Box(320, 100, 150, 150)
    assert suppress([large, inside, beside, similar]) == [large, beside, similar]


def test_no_face_is_found_in_photographs_without_faces(photo):
    for name in ("coffee", "rocket", "brick"):
        gray = cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2GRAY) if name != "brick" else data.brick()
        assert photo.detect(gray) == [], name


def test_the_photo_detector_sees_one_face_in_the_astronaut_wherever_she_stands(photo, astronaut):
    # No second face in the suit or the background, and the one face where it is, wherever the portrait stands.
    portrait = cv2.resize(astronaut, (300, 300))
    for left in range(40, 260, 40):
        frame = np.full((480, 640), 128, np.uint8)
        frame[90:390, left:left + 300] = portrait
        boxes = photo.detect(frame)
        assert len(boxes) == 1, (left, boxes)
        assert np.linalg.norm(centre(boxes[0]) - (centre(FACE) * 300 / 512 + (left, 90))) < 15


def test_the_live_detector_finds_the_astronaut_in_a_webcam_frame(astronaut):
    frame = np.full((480, 640), 90, np.uint8)
    frame[40:440, 120:520] = cv2.resize(astronaut, (400, 400))
    boxes = create_detector("live").detect(frame)
    assert len(boxes) == 1
    assert np.linalg.norm(centre(boxes[0]) - (centre(FACE) * 400 / 512 + (120, 40))) < 15


def test_create_detector_picks_the_mode_and_applies_overrides():
    live = create_detector("live", max_side=320, min_face_fraction=0.2)
    assert isinstance(live, HaarFaceDetector) and (live.max_side, live.min_face_fraction) == (320, 0.2)
    assert isinstance(create_detector("photo"), PhotoFaceDetector)
    with pytest.raises(ValueError):
        create_detector("video")


def test_concurrent_detections_agree_with_a_single_one(astronaut):
    # One rotated pass on a small picture keeps this quick; the pools are what is under test.
    detector = PhotoFaceDetector(passes=(Pass(ALT, 350, angle=-20, confirm=(FRONTAL,)),))
    image, _ = tilted(astronaut, 20)
    expected = detector.detect(image)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(detector.detect, [image] * 8))
    assert expected and all(result == expected for result in results)
