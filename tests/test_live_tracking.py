"""Following faces between full detections gives the same faces and emotions as detecting every frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model_server.api import AnalysisRequest
from model_server.serving.engine import create_engine
from model_server.serving.imaging import encode_image
from model_helpers import astronaut_rgb
from webapp.live.service import FULL_DETECTION_EVERY, DetectionSchedule, FaceTracker

FRAMES, SIZE = 40, (640, 480)
ENTERS, LEAVES = 12, 28  # the second face enters at frame 12; the first leaves after frame 27


def _head(scale: float, mirror: bool) -> np.ndarray:
    """The astronaut's head and shoulders, scaled (and mirrored): a real face to move around."""
    head = astronaut_rgb()[10:250, 110:340]
    head = head[:, ::-1] if mirror else head
    return cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def recorded_sequence() -> list[tuple[bytes, list[tuple[int, int, int, int]]]]:
    """JPEG frames with the rectangles the heads were pasted at: one face drifting right and down, a second
    entering from the right, the first leaving."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (SIZE[1], SIZE[0], 3), dtype=np.uint8), (31, 31), 0)
    first, second = _head(1.0, False), _head(0.9, True)
    frames = []
    for index in range(FRAMES):
        frame, heads = background.copy(), []
        if index < LEAVES:
            x, y = 10 + 3 * index, 10 + index
            frame[y:y + first.shape[0], x:x + first.shape[1]] = first
            heads.append((x, y, first.shape[1], first.shape[0]))
        if index >= ENTERS:
            x, y = 640 - second.shape[1] - 5, 250 - 2 * (index - ENTERS)
            frame[y:y + second.shape[0], x:x + second.shape[1]] = second
            heads.append((x, y, second.shape[1], second.shape[0]))
        frames.append((encode_image(frame, "JPEG", 85), heads))
    return frames


@pytest.fixture(scope="module")
def engine():
    engine = create_engine(batching=False)
    yield engine
    engine.close()


def test_the_tracked_path_finds_the_same_faces_and_emotions_as_full_detection(engine):
    schedule, tracker = DetectionSchedule(), FaceTracker()
    followed_frames, same_top, compared, found_full, found_tracked = 0, 0, 0, 0, 0
    for index, (jpeg, heads) in enumerate(recorded_sequence()):
        full = engine.analyze(AnalysisRequest(jpeg, mode="live"))
        hints = schedule.hints(tracker.current_boxes())
        tracked = engine.analyze(AnalysisRequest(jpeg, mode="live", hints=hints))
        schedule.update(hints, len(tracked.faces), tracked.signature)
        tracker.assign([face.box for face in tracked.faces])
        followed_frames += bool(hints)
        found_full, found_tracked = found_full + len(full.faces), found_tracked + len(tracked.faces)
        for face in full.faces:
            match = max(tracked.faces, key=lambda other: other.box.iou(face.box), default=None)
            if index >= ENTERS and face.box.x > 320 and index < ENTERS + FULL_DETECTION_EVERY + 1:
                continue  # a new face may take up to one full-detection period to be picked up
            assert match is not None and match.box.iou(face.box) > 0.6, f"frame {index}: {face.box} lost"
            compared += 1
            same_top += match.top == face.top
        for face in tracked.faces:  # following never invents a face where no head is
            centre_x, centre_y = face.box.x + face.box.w / 2, face.box.y + face.box.h / 2
            assert any(x <= centre_x <= x + w and y <= centre_y <= y + h for x, y, w, h in heads), f"frame {index}"
    # Most frames were served by following, and the emotions agree on nearly all faces.
    assert followed_frames >= FRAMES // 2
    assert same_top >= 0.9 * compared and compared >= 25
    # Following keeps faces that the one-pass live detector loses now and then, never fewer.
    assert found_tracked >= found_full


def test_a_lost_face_or_a_new_scene_makes_the_next_frame_a_full_search():
    schedule = DetectionSchedule()
    from model_server.api import Box

    known = [Box(10, 10, 50, 50)]
    assert schedule.hints(known) == ()  # the first frame is always searched fully
    schedule.update((), 1, bytes(192))
    hints = schedule.hints(known)
    assert hints == tuple(known)
    schedule.update(hints, 0, bytes(192))  # the face was not found around its box
    assert schedule.hints(known) == ()
    schedule.update((), 1, bytes(192))
    assert schedule.hints(known) == tuple(known)
    schedule.update(tuple(known), 1, bytes([200]) * 192)  # the whole picture changed
    assert schedule.hints(known) == ()
