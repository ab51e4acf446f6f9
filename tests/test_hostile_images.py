"""Every case of the hostile corpus through decode_image: a DecodedImage or a clear ImageError, fast and bounded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hostile_corpus import ANY, OK, corpus
from model_server.errors import ImageError
from model_server.serving.imaging import DecodedImage, decode_image

CASES = corpus(seed=0, mutation_count=60)
WALL_BUDGET_S = 8.0  # the CPU budget is 4 s; wall time allows for a shared, busy machine
MEMORY_BUDGET_MB = 400  # the largest case (16 MP one-colour PNG) needs ~120 MB


def _peak_rss_mb() -> float | None:
    """Peak resident memory since the last reset (VmHWM), or None where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Start a new peak-memory window (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_hostile_image_gets_a_clear_answer_fast_and_in_bounded_memory(case):
    measured = _reset_peak_rss()
    before = _peak_rss_mb()
    started = time.monotonic()
    try:
        answer = decode_image(case.data)
    except ImageError as error:  # anything else (a bare OSError, MemoryError...) fails the test
        answer = error
    elapsed = time.monotonic() - started
    assert elapsed < WALL_BUDGET_S, f"{case.name} took {elapsed:.1f} s"
    if measured and before is not None:
        assert _peak_rss_mb() - before < MEMORY_BUDGET_MB, f"{case.name} peaked {_peak_rss_mb() - before:.0f} MB"
    if case.expect == OK:
        assert isinstance(answer, DecodedImage), f"{case.name}: {answer!r}"
        assert answer.rgb.ndim == 3 and answer.rgb.shape[2] == 3 and answer.rgb.dtype.name == "uint8"
    elif case.expect != ANY:
        assert isinstance(answer, ImageError) and answer.code == case.expect, f"{case.name}: {answer!r}"
    else:
        assert isinstance(answer, (DecodedImage, ImageError))
