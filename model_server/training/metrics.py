"""Classification metrics and the confusion-matrix picture, in NumPy and OpenCV only."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..labels import SEVEN_TO_SIX


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """Counts [true, predicted]."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def classification_report(probabilities: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, top-2, six-class accuracy and per-class precision/recall/F1."""
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(names))
    true_positive = np.diag(matrix).astype(np.float64)
    precision = true_positive / np.maximum(matrix.sum(axis=0), 1)
    recall = true_positive / np.maximum(matrix.sum(axis=1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    top2 = np.argsort(-probabilities, axis=1)[:, :2]
    six = np.array(SEVEN_TO_SIX)
    six_probabilities = np.zeros((len(probabilities), six.max() + 1))
    np.add.at(six_probabilities.T, six, probabilities.T)
    return {
        "n": int(len(labels)),
        "accuracy": round(float((predictions == labels).mean()), 4),
        "macro_f1": round(float(f1.mean()), 4),
        "top2_accuracy": round(float((top2 == labels[:, None]).any(axis=1).mean()), 4),
        "six_class_accuracy": round(float((six_probabilities.argmax(axis=1) == six[labels]).mean()), 4),
        "per_class": {name: {"precision": round(float(p), 4), "recall": round(float(r), 4),
                             "f1": round(float(f), 4), "support": int(s)}
                      for name, p, r, f, s in zip(names, precision, recall, f1, matrix.sum(axis=1))},
        "confusion_matrix": matrix.tolist(),
    }


def draw_confusion_matrix(matrix: np.ndarray, names: Sequence[str], title: str, cell: int = 72) -> np.ndarray:
    """Row-normalised confusion matrix as an RGB image: rows are true labels, columns predictions."""
    classes = len(names)
    margin_left, margin_top = 110, 70
    image = np.full((margin_top + cell * classes + 40, margin_left + cell * classes + 20, 3), 255, np.uint8)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title, (10, 24), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for row in range(classes):
        cv2.putText(image, names[row], (8, margin_top + row * cell + cell // 2 + 5), font, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cv2.putText(image, names[row][:7], (margin_left + row * cell + 4, margin_top - 10), font, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        for column in range(classes):
            shade = int(255 * (1 - rates[row, column]))
            top_left = (margin_left + column * cell, margin_top + row * cell)
            cv2.rectangle(image, top_left, (top_left[0] + cell - 2, top_left[1] + cell - 2), (shade, shade, 255), -1)
            ink = (255, 255, 255) if rates[row, column] > 0.5 else (0, 0, 0)
            cv2.putText(image, f"{rates[row, column] * 100:.0f}%", (top_left[0] + 12, top_left[1] + cell // 2),
                        font, 0.5, ink, 1, cv2.LINE_AA)
            cv2.putText(image, str(matrix[row, column]), (top_left[0] + 12, top_left[1] + cell // 2 + 18),
                        font, 0.4, ink, 1, cv2.LINE_AA)
    cv2.putText(image, "rows: true label, columns: predicted", (10, image.shape[0] - 14), font, 0.45, (80, 80, 80),
                1, cv2.LINE_AA)
    return image


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the confidence-weighted gap between top-1 confidence and accuracy, over equal-width bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    # Bins are (low, high]; np.digitize with right=True puts a confidence of exactly 1.0 in the last bin.
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            gap += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return round(float(gap), 4)
