"""Make eventlet's WebSocket cheap to feed: a vectorised unmask and a cap on fragmented messages.

eventlet unmasks every received byte in a Python generator (about 300 ms per MB on this machine),
on the event loop, before any of our limits run: one client sending large frames froze every other
client (issue 9). RFC 6455 masking is a XOR with a 4-byte key, which numpy does at memory speed.
eventlet also checks ``max_frame_length`` per frame only, so a message split into many small
continuation frames could grow without bound; the patched ``Message.push`` counts the whole message.
"""

from __future__ import annotations

import numpy as np


def unmask(data: bytes, mask, length: int | None = None, offset: int = 0) -> bytes:
    """XOR the first ``length`` bytes of ``data`` with the 4-byte ``mask``, starting ``offset`` bytes into it."""
    if length is None:
        length = len(data)
    if length <= 0:
        return b""
    # Rotate the key so byte 0 of this chunk meets key byte offset % 4, as eventlet's signature allows.
    key = bytes(mask[(offset + i) % 4] for i in range(4))
    # Pad to whole 32-bit words so the XOR runs four bytes at a time; the padding is cut off again.
    words = bytearray(length + (-length) % 4)
    words[:length] = memoryview(data)[:length]
    view = np.frombuffer(words, dtype=np.uint32)
    view ^= np.frombuffer(key, dtype=np.uint32)[0]
    return bytes(memoryview(words)[:length])


def install() -> None:
    """Patch eventlet's RFC 6455 WebSocket in this process (idempotent; harmless if eventlet is unused)."""
    try:
        from eventlet.websocket import FailedConnectionError, RFC6455WebSocket
    except ImportError:  # eventlet is optional for the threading mode used by some tests
        return

    def capped_push(self, data, final=False):
        """Append a frame's payload, refusing a message whose frames together pass the frame cap."""
        self.total_bytes = getattr(self, "total_bytes", 0) + len(data)
        if self.total_bytes > self.max_frame_length:
            # 1009 "message too big": eventlet closes the connection with it, as for one oversized frame.
            raise FailedConnectionError(1009, f"Incoming message is above {self.max_frame_length} bytes.")
        self.finished = final
        self.data.append(data)

    # Both are looked up on the class at every frame, so patching after eventlet is imported still takes effect.
    RFC6455WebSocket._apply_mask = staticmethod(unmask)
    RFC6455WebSocket.Message.push = capped_push
