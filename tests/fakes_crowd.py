"""A predictor for crowded-photo tests: a grid of faces in any image, answered largest first like the real one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fakes import FakePredictor
from model_server.api import AnalysisRequest, Box, FaceResult, ImageAnalysis
from model_server.labels import EMOTIONS

CROWD_SPEC = "fakes_crowd:create_crowd_predictor"
ROWS, COLUMNS = 4, 5  # 20 faces: the "group photo" of issue 12


def grid_boxes(width: int, height: int, rows: int = ROWS, columns: int = COLUMNS) -> list[Box]:
    """Boxes on a rows x columns grid, a little uneven in size and height like heads in a group photo."""
    cell_w, cell_h = width // columns, height // rows
    boxes = []
    for row in range(rows):
        for column in range(columns):
            n = row * columns + column
            side = int(min(cell_w, cell_h) * (0.55 + 0.03 * (n % 5)))
            jitter = int(cell_h * 0.06 * ((n * 7) % 3 - 1))
            x = column * cell_w + (cell_w - side) // 2
            y = max(0, row * cell_h + (cell_h - side) // 2 + jitter)
            boxes.append(Box(x, y, side, side))
    return boxes


class CrowdPredictor(FakePredictor):
    """Twenty faces in any image at least 200x160; each face's top emotion cycles through the labels."""

    def analyze(self, request: AnalysisRequest) -> ImageAnalysis:
        """The grid's faces, largest first (the model tier's order), with probabilities peaked on one label."""
        result = super().analyze(request)  # records the request and decodes, with the real decoder's errors
        boxes = grid_boxes(result.width, result.height) if result.width >= 200 and result.height >= 160 else []
        faces = []
        for n, box in enumerate(boxes):
            probabilities = np.full(len(EMOTIONS), 0.3 / (len(EMOTIONS) - 1))
            probabilities[n % len(EMOTIONS)] = 0.7
            crop = np.zeros((48, 48), np.uint8) if request.want_crops else None
            faces.append(FaceResult(box, box, tuple(float(p) for p in probabilities), crop))
        faces.sort(key=lambda face: -face.box.w * face.box.h)
        return replace(result, faces=tuple(faces))


def create_crowd_predictor(photo_max_pixels: int = 40_000_000, **_settings) -> CrowdPredictor:
    """Factory named by CROWD_SPEC."""
    return CrowdPredictor(photo_max_pixels)
