"""eventlet's WebSocket after webapp.websocket_patch.install(): RFC 6455 unmasking, fast, and capped messages."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest
from eventlet import websocket as eventlet_websocket

from webapp import websocket_patch


def _rfc6455_unmask(data: bytes, mask: bytes, offset: int = 0) -> bytes:
    """RFC 6455 section 5.3 word for word: octet i XOR masking-key octet (i MOD 4)."""
    return bytes(byte ^ mask[(offset + i) % 4] for i, byte in enumerate(data))


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 1000, 1 << 20])
def test_unmask_matches_the_rfc_definition(length):
    rng = random.Random(length)
    data = rng.randbytes(length)
    for offset in (0, 1, 2, 3, 7):
        mask = tuple(rng.randrange(256) for _ in range(4))
        assert websocket_patch.unmask(data, mask, length=length, offset=offset) == _rfc6455_unmask(data, mask, offset)
    assert websocket_patch.unmask(data, mask) == _rfc6455_unmask(data, mask)


def test_unmask_takes_only_length_bytes_and_any_buffer():
    data = bytearray(b"abcdefgh")
    assert websocket_patch.unmask(memoryview(data), (1, 2, 3, 4), length=5) == _rfc6455_unmask(b"abcde", b"\1\2\3\4")


def _masked_frame(payload: bytes, mask: bytes, opcode: int = 2, final: bool = True) -> bytes:
    """A client-to-server frame as a browser sends it."""
    head = bytes([(0x80 if final else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
    return head + mask + _rfc6455_unmask(payload, mask)


@pytest.fixture
def server_and_client():
    """An eventlet RFC 6455 server socket (patched) and the raw client end feeding it."""
    websocket_patch.install()
    server_end, client_end = socket.socketpair()
    server_end.settimeout(10)
    ws = eventlet_websocket.RFC6455WebSocket(server_end, {}, max_frame_length=2 << 20)
    yield ws, client_end
    server_end.close()
    client_end.close()


def test_after_install_eventlet_receives_masked_frames_through_the_fast_unmask(server_and_client):
    ws, client = server_and_client
    assert eventlet_websocket.RFC6455WebSocket._apply_mask is websocket_patch.unmask
    payload = random.Random(1).randbytes(1 << 20)
    frame = _masked_frame(payload, b"\x9a\x01\xfe\x42")
    sender = threading.Thread(target=client.sendall, args=(frame,))
    sender.start()
    started = time.perf_counter()
    assert ws.wait() == payload
    elapsed = time.perf_counter() - started
    sender.join()
    # eventlet's own byte loop took ~300 ms for 1 MB here; the vectorised one a few ms (slack for a busy CI).
    assert elapsed < 0.1, f"1 MB took {elapsed * 1000:.0f} ms to receive"


def test_a_message_fragmented_past_the_frame_cap_closes_the_connection(server_and_client):
    ws, client = server_and_client
    ws.max_frame_length = 1000
    chunk = b"x" * 600  # each frame is under the cap, the message is not
    client.sendall(_masked_frame(chunk, b"abcd", opcode=2, final=False) + _masked_frame(chunk, b"abcd", opcode=0))
    assert ws.wait() is None  # eventlet answers a FailedConnectionError by closing
    close = client.recv(64)
    assert close[0] == 0x88 and struct.unpack("!H", close[2:4])[0] == 1009
