"""The real stdlib threading and queue modules, even under eventlet monkey-patching.

The model runs in real OS threads (the web app calls in through eventlet.tpool). Patched
primitives there would be green: a green lock or queue shared between OS threads misbehaves,
and a green batcher thread would run the model on the event loop and stall every client.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def unpatched(module_name: str) -> ModuleType:
    """The original stdlib module when eventlet has monkey-patched threads, else the normal import."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return patcher.original(module_name)
    return importlib.import_module(module_name)


threading = unpatched("threading")
queue = unpatched("queue")
