"""A predictor that is slow the way CPU-bound inference is, for the live event-loop tests."""

from __future__ import annotations

import numpy as np

from fakes import FakePredictor, decode_rgb

SLOW_SPEC = "fakes_live:create_slow_predictor"  # tests/ is on the server's PYTHONPATH
SLOW_SECONDS = 2.0


class SlowFakePredictor(FakePredictor):
    """The fake predictor, but images of one colour take SLOW_SECONDS of blocking work."""

    def __init__(self) -> None:
        super().__init__()
        from eventlet import patcher  # only the server process (already running eventlet) builds this

        # The unpatched sleep blocks its OS thread without yielding to eventlet, as a busy CPU would:
        # if analysis ran on the event loop, every client of the server would freeze for SLOW_SECONDS.
        self._blocking_sleep = patcher.original("time").sleep

    def analyze(self, request):
        """Block on one-colour images, then answer like FakePredictor."""
        if float(decode_rgb(request.image).std()) < 1.0:
            self._blocking_sleep(SLOW_SECONDS)
        return super().analyze(request)


def create_slow_predictor(**_options) -> SlowFakePredictor:
    """Factory named by SLOW_SPEC."""
    return SlowFakePredictor()
