"""Upload-to-answer latency of POST /api/v1/predict on a real server (python -m webapp, eventlet).

    .venv/bin/python benchmarks/bench_upload.py            # the real model
    .venv/bin/python benchmarks/bench_upload.py --fake     # the test predictor (measures the web stack)
    .venv/bin/python benchmarks/bench_upload.py --face-only   # sent with face_only: no detection, one face read
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FAKE_SPEC = "fakes:create_fake_predictor"  # tests/fakes.py; tests/ goes on the server's PYTHONPATH


def photo_jpeg() -> bytes:
    """The astronaut (one face) scaled to 866x866, undistorted, on a 1155x866 (one-megapixel) canvas, as a JPEG."""
    from skimage import data

    canvas = Image.new("RGB", (1155, 866), (90, 90, 90))
    canvas.paste(Image.fromarray(data.astronaut()).resize((866, 866), Image.BICUBIC), (144, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, workdir: Path, predictor: str | None) -> subprocess.Popen:
    """Run ``python -m webapp`` with a throwaway database and media folder, rate limits off."""
    env = dict(os.environ, EMO_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}", EMO_MEDIA_DIR=str(workdir / "media"),
               EMO_SECRET_KEY="bench", EMO_RATELIMIT_ENABLED="0", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    if predictor:
        env["EMO_PREDICTOR"] = predictor
    return subprocess.Popen([sys.executable, "-m", "webapp", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_healthy(base: str, server: subprocess.Popen, timeout_s: float = 180.0) -> None:
    """Poll /api/v1/health until the model is loaded; a slow answer (a busy CPU at start-up) is retried."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.stderr.read()[-3000:]}")
        try:
            if requests.get(f"{base}/api/v1/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base} did not become healthy in {timeout_s:.0f} s")


def main() -> None:
    """Start the server, post the photo N times, print median and p95."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fake", action="store_true", help="use the fake test predictor")
    parser.add_argument("--predictor", help="predictor spec (default: the app's EMO_PREDICTOR default)")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--face-only", action="store_true", help="send face_only=true (the picture read whole)")
    args = parser.parse_args()
    predictor = FAKE_SPEC if args.fake else args.predictor
    jpeg, port = photo_jpeg(), free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(port, Path(workdir), predictor)
        try:
            wait_healthy(base, server)
            timings, faces = [], set()
            with requests.Session() as http:
                for number in range(args.warmup + args.requests):
                    started = time.perf_counter()
                    response = http.post(f"{base}/api/v1/predict", files={"image": ("photo.jpg", jpeg, "image/jpeg")},
                                         data={"face_only": "true"} if args.face_only else None)
                    elapsed = (time.perf_counter() - started) * 1000
                    response.raise_for_status()
                    faces.add(len(response.json()["faces"]))
                    if number >= args.warmup:
                        timings.append(elapsed)
        finally:
            server.terminate()
            server.wait(timeout=10)
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))]
    print(f"{len(timings)} uploads of a {len(jpeg) / 1024:.0f} KB 1155x866 JPEG, faces per answer {sorted(faces)}; "
          f"predictor {predictor or 'default'}{', face_only' if args.face_only else ''}")
    print(f"median {statistics.median(timings):.1f} ms   p95 {p95:.1f} ms   min {timings[0]:.1f} ms")


if __name__ == "__main__":
    main()
