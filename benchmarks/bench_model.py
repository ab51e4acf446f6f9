"""Classifier throughput and full-pipeline latency: ``python benchmarks/bench_model.py [--checkpoint PATH]``.

Prints crops/s at batch 1 and 32, and the time to analyse a 640x480 frame with one face,
on the CPU (and on CUDA when present).
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from model_server.serving.classifier import EmotionClassifier
from model_server.serving.engine import EmotionPipeline
from model_server.preprocessing import TTA_MODES


def face_frame() -> np.ndarray:
    """A 640x480 RGB frame holding one real face (scikit-image's astronaut portrait)."""
    from skimage.data import astronaut

    face = astronaut()[0:300, 80:380]  # the head and shoulders
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[90:390, 170:470] = face
    return frame


def timed(function, repeats: int) -> list[float]:
    """Wall-clock milliseconds of each call after two warm-up calls."""
    function(), function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float], items: int = 1) -> None:
    """Print median, p95 and throughput of a list of timings."""
    median = statistics.median(samples)
    p95 = sorted(samples)[int(0.95 * (len(samples) - 1))]
    print(f"{name:42s} median {median:7.2f} ms  p95 {p95:7.2f} ms  {items * 1000 / median:8.1f} items/s")


def main() -> None:
    """Run the benchmarks on every available device."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for device in devices:
        for tta in TTA_MODES:
            classifier = EmotionClassifier(args.checkpoint, device=device, tta=tta)
            crop = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
            label = f"[{device} tta={tta}]"
            report(f"{label} classifier, batch 1", timed(lambda: classifier.classify([crop]), args.repeats))
            report(f"{label} classifier, batch 32", timed(lambda: classifier.classify([crop] * 32), args.repeats // 4),
                   items=32)
        pipeline = EmotionPipeline(EmotionClassifier(args.checkpoint, device=device))
        frame = face_frame()
        faces = len(pipeline.analyze(frame).faces)
        report(f"[{device}] pipeline 640x480, {faces} face", timed(lambda: pipeline.analyze(frame), args.repeats))
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        report(f"[{device}]   of which Haar detection", timed(lambda: pipeline.detector.detect(gray), args.repeats))


if __name__ == "__main__":
    main()
