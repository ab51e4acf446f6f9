"""The seven FER2013 emotion labels, their emoji, and the six-class view."""

from __future__ import annotations

from typing import Mapping, Sequence

# FER2013 order: the class index of every data set loader and every checkpoint.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

EMOJI: Mapping[str, str] = {
    "angry": "\U0001F620",
    "disgust": "\U0001F922",
    "fear": "\U0001F628",
    "happy": "\U0001F604",
    "sad": "\U0001F622",
    "surprise": "\U0001F62E",
    "neutral": "\U0001F610",
}

# Older FER apps merged disgust (1.5% of FER2013) into angry; we derive that view
# from the seven probabilities so there is only ever one model.
SIX_CLASS_EMOTIONS: tuple[str, ...] = ("angry", "fear", "happy", "sad", "surprise", "neutral")
SEVEN_TO_SIX: tuple[int, ...] = (0, 0, 1, 2, 3, 4, 5)


def emotion_index(name: str) -> int:
    """Return the FER2013 class index of an emotion name, raising ValueError if unknown."""
    try:
        return EMOTIONS.index(name.strip().lower())
    except ValueError:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}") from None


def to_six_class(probabilities: Sequence[float]) -> dict[str, float]:
    """Merge seven-class probabilities into the six-class view (disgust added to angry)."""
    if len(probabilities) != len(EMOTIONS):
        raise ValueError(f"expected {len(EMOTIONS)} probabilities, got {len(probabilities)}")
    merged = [0.0] * len(SIX_CLASS_EMOTIONS)
    for seven_index, six_index in enumerate(SEVEN_TO_SIX):
        merged[six_index] += float(probabilities[seven_index])
    return dict(zip(SIX_CLASS_EMOTIONS, merged))


def six_class_indices(seven_class_indices: Sequence[int]) -> list[int]:
    """Map seven-class label indices to six-class indices."""
    return [SEVEN_TO_SIX[i] for i in seven_class_indices]
