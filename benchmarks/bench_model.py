"""Classifier throughput and full-pipeline latency: ``python benchmarks/bench_model.py [--checkpoint PATH]``.

Prints crops/s at batch 1 and 32 for the photo ensemble and the live student, and the time the
engine takes to analyse a 640x480 frame with one face in each mode, on the CPU (and on CUDA when present).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from model_server.api import AnalysisRequest
from model_server.serving.classifier import EmotionClassifier
from model_server.serving.detector import create_detector
from model_server.serving.engine import create_engine, to_gray
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
        for variant in ("photo", "live"):
            for tta in TTA_MODES:
                classifier = EmotionClassifier(args.checkpoint, device=device, tta=tta, variant=variant)
                crop = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
                label = f"[{device} {variant} tta={tta}]"
                report(f"{label} classifier, batch 1", timed(lambda: classifier.classify([crop]), args.repeats))
                report(f"{label} classifier, batch 32",
                       timed(lambda: classifier.classify([crop] * 32), max(1, args.repeats // 4)), items=32)
        named = {"checkpoint": args.checkpoint} if args.checkpoint else {}
        engine = create_engine(batching=False, device=device, **named)
        frame = face_frame()
        for mode in ("photo", "live"):
            # The thorough photo detector is ~15x slower than a live frame: a tenth of the repeats suffices.
            runs = max(1, args.repeats // (10 if mode == "photo" else 1))
            request = AnalysisRequest(image=frame, mode=mode)
            faces = len(engine.analyze(request).faces)
            report(f"[{device}] engine {mode} 640x480, {faces} face",
                   timed(lambda: engine.analyze(request), runs))
            detector = create_detector(mode)
            report(f"[{device}]   of which {mode} detection",
                   timed(lambda: detector.detect(to_gray(frame)), runs))
        engine.close()

if __name__ == "__main__":
    main()
