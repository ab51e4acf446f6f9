"""Draw boxes, labels and a small drawn emoji for each face (no emoji font needed)."""

from __future__ import annotations

import cv2
import numpy as np

from ..api import ImageAnalysis

_COLOURS = {  # RGB
    "angry": (220, 50, 47), "disgust": (133, 153, 0), "fear": (108, 113, 196), "happy": (250, 200, 30),
    "sad": (38, 139, 210), "surprise": (211, 54, 130), "neutral": (147, 161, 161),
}


def _draw_emoji(image: np.ndarray, label: str, centre: tuple[int, int], radius: int) -> None:
    """A yellow face whose eyes, brows and mouth follow the emotion."""
    x, y = centre
    outline = (40, 40, 40)
    thickness = max(1, radius // 10)
    cv2.circle(image, centre, radius, (255, 210, 60), -1, cv2.LINE_AA)
    cv2.circle(image, centre, radius, outline, thickness, cv2.LINE_AA)
    eye_dx, eye_y, eye_r = radius // 3, y - radius // 4, max(1, radius // 8)
    eye_r_y = eye_r * 2 if label in ("surprise", "fear") else eye_r
    for side in (-1, 1):
        cv2.ellipse(image, (x + side * eye_dx, eye_y), (eye_r, eye_r_y), 0, 0, 360, outline, -1, cv2.LINE_AA)
        if label in ("angry", "disgust", "sad", "fear"):
            inner_up = label in ("sad", "fear")
            inner = (x + side * radius // 8, eye_y - radius // 4 - (radius // 8 if inner_up else -radius // 10))
            outer = (x + side * radius // 2, eye_y - radius // 4)
            cv2.line(image, inner, outer, outline, thickness, cv2.LINE_AA)
    mouth_y, mouth_w = y + radius // 3, radius // 2
    if label == "happy":
        cv2.ellipse(image, (x, mouth_y - radius // 8), (mouth_w, radius // 4), 0, 10, 170, outline, thickness,
                    cv2.LINE_AA)
    elif label in ("sad", "angry", "disgust"):
        cv2.ellipse(image, (x, mouth_y + radius // 6), (mouth_w, radius // 5), 0, 190, 350, outline, thickness,
                    cv2.LINE_AA)
    elif label in ("surprise", "fear"):
        cv2.ellipse(image, (x, mouth_y), (radius // 5, radius // 4), 0, 0, 360, outline, thickness, cv2.LINE_AA)
    else:
        cv2.line(image, (x - mouth_w, mouth_y), (x + mouth_w, mouth_y), outline, thickness, cv2.LINE_AA)


def annotate(rgb: np.ndarray, analysis: ImageAnalysis) -> np.ndarray:
    """Return a copy of the image with each face's box, top label with percentage, and emoji."""
    canvas = np.ascontiguousarray(rgb if rgb.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)).copy()
    scale = max(canvas.shape[:2]) / 800
    for face in analysis.faces:
        box, label = face.box, face.top
        colour = _COLOURS.get(label, (255, 255, 255))
        thickness = max(2, int(round(2 * scale)))
        cv2.rectangle(canvas, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, thickness, cv2.LINE_AA)
        text = f"{label} {face.emotions[label] * 100:.0f}%"
        font_scale = max(0.5, 0.7 * scale)
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        text_y = box.y - 6 if box.y - text_h - 6 > 0 else box.y + box.h + text_h + 6
        cv2.rectangle(canvas, (box.x, text_y - text_h - baseline), (box.x + text_w, text_y + baseline), colour, -1)
        cv2.putText(canvas, text, (box.x, text_y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
        radius = max(8, box.w // 6)
        _draw_emoji(canvas, label, (min(canvas.shape[1] - radius, box.x + box.w + radius // 2),
                                    max(radius, box.y + radius)), radius)
    return canvas
