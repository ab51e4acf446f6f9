"""Labels, the six-class view and every registered architecture."""

import pytest
import torch

from model_server.labels import EMOJI, EMOTIONS, emotion_index, six_class_indices, to_six_class
from model_server.networks import available_models, create_model


def test_labels_are_fer2013_order_with_an_emoji_each():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert set(EMOJI) == set(EMOTIONS)


def test_six_class_view_adds_disgust_to_angry_and_keeps_the_rest():
    six = to_six_class([0.1, 0.2, 0.05, 0.3, 0.15, 0.1, 0.1])
    assert list(six) == ["angry", "fear", "happy", "sad", "surprise", "neutral"]
    assert six["angry"] == pytest.approx(0.3)
    assert six["happy"] == pytest.approx(0.3)
    assert sum(six.values()) == pytest.approx(1.0)
    assert six_class_indices([0, 1, 2, 6]) == [0, 0, 1, 5]


def test_emotion_index_accepts_names_and_refuses_unknown():
    assert emotion_index(" Happy ") == 3
    with pytest.raises(ValueError, match="unknown emotion"):
        emotion_index("contempt")
    with pytest.raises(ValueError):
        to_six_class([1.0, 0.0])


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("size", [40, 48])
def test_every_registered_model_maps_a_face_batch_to_seven_logits(name, size):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 1, size, size))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="vgg_tiny"):
        create_model("alexnet")


def test_the_fast_default_stays_small():
    parameters = sum(p.numel() for p in create_model("vgg_tiny").parameters())
    assert parameters < 1_000_000
