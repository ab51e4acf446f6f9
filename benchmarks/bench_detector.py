"""Face detector recall, false positives and time on a detection set generated here, with its boxes.

    .venv/bin/python benchmarks/bench_detector.py                 # FER2013 faces too, when the file is there
    .venv/bin/python benchmarks/bench_detector.py --fer none      # astronaut-only set (no FER2013 needed)

The set is built in memory from a fixed seed each run (nothing of FER2013 is written anywhere):
group photos of 3-9 people on scikit-image's photographs (upright, tilted and mirrored heads from
28 px to a few hundred px, on canvases up to 2400 px), tight, loose, tilted and scaled portraits of
scikit-image's astronaut, face-only crops, and face-free photographs. FER2013 faces are 48x48 tight
crops, so each is upscaled and set into a drawn head (hair, skin, neck, shoulders) with a feathered edge.
A detection counts when its centre lies in a face's box and its size is within a factor of two of the
face's; each face matches at most one detection, and every unmatched detection is a false positive.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model_server.api import Box  # noqa: E402
from model_server.serving.detector import HaarFaceDetector, create_detector  # noqa: E402

FER_DEFAULT = REPO.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
# The astronaut's face in skimage.data.astronaut() (512x512), as the frontal cascades box it.
ASTRONAUT_FACE = (177, 66, 96, 96)
# Face-free photographs (camera and astronaut hold faces; chelsea's cat face is a fair trap for a face detector).
BACKGROUNDS = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "coins", "moon", "immunohistochemistry")


@dataclass
class Person:
    """A grayscale head (and shoulders) with its alpha mask and the face's centre and side in patch pixels."""

    pixels: np.ndarray
    alpha: np.ndarray
    face_centre: tuple[float, float]
    face_side: float


@dataclass
class Scene:
    """One benchmark image: grayscale pixels, the true face boxes, and which part of the set it belongs to."""

    gray: np.ndarray
    faces: list[Box]
    kind: str


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Grayscale uint8 of an RGB or gray skimage image."""
    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def astronaut_gray() -> np.ndarray:
    """scikit-image's astronaut portrait, grayscale."""
    from skimage import data

    return to_gray(data.astronaut())


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random face-free photograph cropped to the aspect ratio, resized to width x height, maybe mirrored."""
    from skimage import data

    photo = to_gray(getattr(data, BACKGROUNDS[rng.integers(len(BACKGROUNDS))])())
    ph, pw = photo.shape
    crop_w, crop_h = min(pw, int(ph * width / height)), min(ph, int(pw * height / width))
    left, top = rng.integers(pw - crop_w + 1), rng.integers(ph - crop_h + 1)
    photo = cv2.resize(photo[top:top + crop_h, left:left + crop_w], (width, height), interpolation=cv2.INTER_CUBIC)
    return photo[:, ::-1].copy() if rng.random() < 0.5 else photo


def feathered_ellipse(shape: tuple[int, int], centre, axes, blur: float) -> np.ndarray:
    """A float mask in [0, 1]: a filled ellipse softened by a Gaussian blur of ``blur`` px."""
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur > 0 else mask


def fade_bottom(height: int, over: float) -> np.ndarray:
    """A column of weights falling from 1 to 0 over the last ``over`` rows: shoulders fade out instead of
    ending in a straight cut, which would paste a hard edge into the scene."""
    return np.clip((height - np.arange(height, dtype=np.float32)) / over, 0, 1)[:, None]


def astronaut_person() -> Person:
    """The astronaut's head and shoulders, cut out with a soft mask (the flag and suit come with it)."""
    gray = astronaut_gray()
    x, y, w, h = ASTRONAUT_FACE
    patch = gray[0:400, 90:360]
    mask = np.maximum(feathered_ellipse(patch.shape, (x + w / 2 - 90, y + h / 2), (0.75 * w, 0.95 * h), 6),
                      feathered_ellipse(patch.shape, (135, 400), (135, 230), 6))
    mask *= fade_bottom(patch.shape[0], 80)
    return Person(patch, mask, (x + w / 2 - 90, y + h / 2), float(w))


def fer_person(face48: np.ndarray, rng: np.random.Generator) -> Person:
    """A FER2013 face upscaled into a drawn head: hair, skin the tone of the face, neck and shoulders.

    FER2013 crops run from brow to chin, so the face is the crop; the rest is drawn around it and
    the crop's square edge is feathered into the skin so no hard rectangle remains for a cascade to see.
    """
    side = 120
    face = cv2.resize(face48, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    height, width = int(side * 2.6), int(side * 2.4)
    cx, cy = width / 2, side * 0.95
    # The face's middle is mostly skin (its border is often hair, hands or background).
    skin, hair = float(np.median(face[side // 4:side * 3 // 4, side // 4:side * 3 // 4])), float(rng.uniform(15, 90))
    cloth = float(rng.choice([rng.uniform(20, 80), rng.uniform(150, 235)]))
    canvas = np.full((height, width), cloth, np.float32)
    shapes = [(hair, (cx, cy - side * 0.12), (side * 0.72, side * 0.82)),   # hair, above and behind the face
              (skin, (cx, cy + side * 0.04), (side * 0.62, side * 0.72)),   # head
              (skin, (cx, cy + side * 0.7), (side * 0.25, side * 0.35))]    # neck
    alpha = feathered_ellipse((height, width), (cx, height), (width * 0.5, height - cy - side * 0.75), 3)
    alpha *= fade_bottom(height, side * 0.4)
    for tone, centre, axes in shapes:
        mask = feathered_ellipse((height, width), centre, axes, 3)
        canvas = canvas * (1 - mask) + tone * mask
        alpha = np.maximum(alpha, mask)
    left, top = int(cx - side / 2), int(cy - side / 2)
    # The ellipse stays inside the crop and its blur fades out before the crop's edge.
    inner = feathered_ellipse((side, side), (side / 2, side / 2), (side * 0.43, side * 0.45), side * 0.04)
    region = canvas[top:top + side, left:left + side]
    canvas[top:top + side, left:left + side] = region * (1 - inner) + face * inner
    return Person(np.clip(canvas, 0, 255).astype(np.uint8), alpha, (cx, cy), float(side))


def paste(canvas: np.ndarray, person: Person, face_side: float, angle: float, mirror: bool,
          centre: tuple[float, float]) -> Box:
    """Scale, rotate (degrees, counter-clockwise) and maybe mirror a person so the face has ``face_side`` px
    and its centre lands at ``centre``; alpha-blend into ``canvas`` in place and return the face's true box."""
    pixels, alpha, (fx, fy) = person.pixels, person.alpha, person.face_centre
    if mirror:
        pixels, alpha, fx = pixels[:, ::-1], alpha[:, ::-1], pixels.shape[1] - 1 - fx
    scale = face_side / person.face_side
    matrix = cv2.getRotationMatrix2D((fx, fy), angle, scale)
    matrix[:, 2] += (centre[0] - fx, centre[1] - fy)
    size = (canvas.shape[1], canvas.shape[0])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    warped = cv2.warpAffine(np.ascontiguousarray(pixels).astype(np.float32), matrix, size, flags=interpolation)
    weight = cv2.warpAffine(np.ascontiguousarray(alpha), matrix, size, flags=cv2.INTER_LINEAR)
    canvas[:] = np.clip(canvas * (1 - weight) + warped * weight, 0, 255)
    half = face_side / 2
    left, top = max(0, int(round(centre[0] - half))), max(0, int(round(centre[1] - half)))
    right = min(canvas.shape[1], int(round(centre[0] + half)))
    bottom = min(canvas.shape[0], int(round(centre[1] + half)))
    return Box(left, top, right - left, bottom - top)


def photographic(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-like finish: a slight blur, sensor noise and a JPEG round trip."""
    soft = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.7)
    noisy = np.clip(soft + rng.normal(0, 3, soft.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="JPEG", quality=88)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


def group_photo(people: list[Person], rng: np.random.Generator) -> Scene:
    """3-9 people at mixed sizes, tilts and mirroring, faces never overlapping, on a large photograph."""
    width = int(rng.choice([1024, 1600, 2000, 2400]))
    height = int(width * rng.choice([2 / 3, 3 / 4]))
    canvas = background(rng, width, height).astype(np.float32)
    faces: list[Box] = []
    for _ in range(int(rng.integers(3, 10))):
        # Log-uniform sizes: many small faces, as in real group photos, and a few large ones.
        side = float(np.exp(rng.uniform(np.log(28), np.log(min(320, height * 0.3)))))
        tilt = rng.random()
        angle = rng.uniform(-4, 4) if tilt < 0.6 else rng.choice([-1, 1]) * rng.uniform(10, 25)
        for _attempt in range(30):
            centre = (rng.uniform(side, width - side), rng.uniform(side, height - side * 1.5))
            candidate = Box(int(centre[0] - side * 0.7), int(centre[1] - side * 0.7), int(side * 1.4), int(side * 1.4))
            if all(candidate.iou(other) == 0 for other in faces):
                person = people[rng.integers(len(people))]
                faces.append(paste(canvas, person, side, angle, bool(rng.random() < 0.5), centre))
                break
    return Scene(photographic(canvas.astype(np.uint8), rng), faces, "group")


def portrait(kind: str, rng: np.random.Generator, astronaut: Person) -> Scene:
    """A single-person photo: tight head-and-shoulders, loose, tilted, small in a big frame, or a face crop."""
    if kind == "tight":        # face ~45% of the width, hair cut by the top edge, shoulders by the bottom
        width = int(rng.integers(360, 900))
        side = width * rng.uniform(0.4, 0.5)
        height = int(width * 1.25)
        centre = (width / 2 + rng.uniform(-0.05, 0.05) * width, height * rng.uniform(0.36, 0.44))
        angle = rng.uniform(-5, 5)
    elif kind == "face_crop":  # an already-cropped face: the face fills most of the picture
        width = height = int(rng.integers(150, 600))
        side, centre, angle = width * 0.8, (width / 2, height * 0.52), 0.0
    elif kind == "tilted":
        width = int(rng.integers(500, 1200))
        height, side = int(width * 1.2), width * rng.uniform(0.18, 0.3)
        centre = (width / 2, height * 0.4)
        angle = rng.choice([-1, 1]) * rng.uniform(12, 25)
    elif kind == "small":      # one person far away in a large frame
        width, height = 2400, 1600
        side, centre, angle = rng.uniform(30, 55), (rng.uniform(300, 2100), rng.uniform(300, 1200)), rng.uniform(-4, 4)
    else:                      # loose
        width = int(rng.integers(800, 2000))
        height, side = int(width * 0.75), width * rng.uniform(0.08, 0.15)
        centre, angle = (rng.uniform(0.3, 0.7) * width, height * 0.35), rng.uniform(-5, 5)
    canvas = background(rng, width, height).astype(np.float32)
    face = paste(canvas, astronaut, side, angle, bool(rng.random() < 0.5), centre)
    return Scene(photographic(canvas.astype(np.uint8), rng), [face], kind)


def fer_people(path: Path | None, rng: np.random.Generator, count: int) -> list[Person]:
    """``count`` random FER2013 faces (any split) as drawn heads; none when the file is absent."""
    if path is None or not path.is_file():
        return []
    images = np.load(path)["images"]
    # Near-blank rows (FER2013 has a few) are not faces; keep faces with some contrast.
    usable = np.flatnonzero(images.reshape(len(images), -1).std(axis=1) > 25)
    return [fer_person(images[i], rng) for i in rng.choice(usable, count, replace=False)]


def build_set(fer_path: Path | None, seed: int = 7, groups: int = 24) -> list[Scene]:
    """The whole detection set: group photos, portraits of every kind, and face-free photographs."""
    rng = np.random.default_rng(seed)
    astronaut = astronaut_person()
    people = fer_people(fer_path, rng, 160) or [astronaut]
    # The astronaut joins the groups as about one person in twenty: a photographed head among drawn ones.
    scenes = [group_photo(people + [astronaut] * max(1, len(people) // 20), rng) for _ in range(groups)]
    for kind in ("tight", "face_crop", "tilted", "small", "loose"):
        scenes += [portrait(kind, rng, astronaut) for _ in range(4)]
    for _ in range(8):
        width = int(rng.choice([640, 1600, 2400]))
        scenes.append(Scene(photographic(background(rng, width, int(width * 0.75)), rng), [], "empty"))
    return scenes


def match(found: list[Box], truth: list[Box]) -> tuple[int, int]:
    """(faces found, false positives): greedy one-to-one matching, nearest centre first."""
    pairs = []
    for i, f in enumerate(found):
        fx, fy = f.x + f.w / 2, f.y + f.h / 2
        for j, t in enumerate(truth):
            inside = t.x <= fx <= t.x + t.w and t.y <= fy <= t.y + t.h
            ratio = np.sqrt(f.w * f.h / (t.w * t.h))
            if inside and 0.5 <= ratio <= 2.0:
                pairs.append((np.hypot(fx - t.x - t.w / 2, fy - t.y - t.h / 2), i, j))
    used_found, used_truth = set(), set()
    for _distance, i, j in sorted(pairs):
        if i not in used_found and j not in used_truth:
            used_found.add(i)
            used_truth.add(j)
    return len(used_truth), len(found) - len(used_found)


def evaluate(detector, scenes: list[Scene]) -> dict[str, float]:
    """Recall overall and per kind, false positives, and mean wall-clock and CPU milliseconds per image."""
    hits, totals, false_positives, elapsed, cpu = {}, {}, 0, 0.0, 0.0
    for scene in scenes:
        started, started_cpu = time.perf_counter(), time.process_time()
        found = detector.detect(scene.gray)
        elapsed += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        found_faces, wrong = match(found, scene.faces)
        hits[scene.kind] = hits.get(scene.kind, 0) + found_faces
        totals[scene.kind] = totals.get(scene.kind, 0) + len(scene.faces)
        false_positives += wrong
    result = {f"recall_{kind}": hits[kind] / totals[kind] for kind in totals if totals[kind]}
    result["recall"] = sum(hits.values()) / sum(totals.values())
    result["false_positives"] = false_positives
    result["ms"], result["cpu_ms"] = 1000 * elapsed / len(scenes), 1000 * cpu / len(scenes)
    return result


def detectors() -> dict[str, object]:
    """The settings compared: the photo path before issue 10, OpenCV's plain settings, and today's two modes."""
    return {
        "old photo (640 px, equalised, step 1.2)": HaarFaceDetector(max_side=640, min_face_fraction=0.06,
                                                                    min_neighbors=5, scale_factor=1.2,
                                                                    equalize=True),
        "plain Haar (full size, step 1.1, 3 neighbours)": HaarFaceDetector(
            max_side=None, min_face_fraction=0.0, min_neighbors=3, scale_factor=1.1, equalize=False),
        "plain Haar, 5 neighbours": HaarFaceDetector(max_side=None, min_face_fraction=0.0, min_neighbors=5,
                                                     scale_factor=1.1, equalize=False),
        "photo (create_detector('photo'))": create_detector("photo"),
        # The cap is the photo path's time knob: fewer pixels for the upright pass, fewer small faces found.
        "photo, max_side=1280": create_detector("photo", max_side=1280),
        "live (create_detector('live'))": create_detector("live"),
    }


def main() -> None:
    """Build the set, run every detector, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer", default=str(FER_DEFAULT), help="FER2013 .npz, or 'none' for astronaut-only heads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--groups", type=int, default=24, help="how many group photos")
    args = parser.parse_args()
    fer_path = None if args.fer == "none" else Path(args.fer)
    scenes = build_set(fer_path, args.seed, args.groups)
    kinds = sorted({scene.kind for scene in scenes if scene.faces})
    faces = {kind: sum(len(s.faces) for s in scenes if s.kind == kind) for kind in kinds}
    print(f"{len(scenes)} images, faces: " + ", ".join(f"{faces[k]} {k}" for k in kinds)
          + f"; {sum(s.kind == 'empty' for s in scenes)} face-free; FER2013 heads: "
          + ("yes" if fer_path and fer_path.is_file() else "no"))
    # CPU time as well as wall-clock: on a shared machine the wall clock mostly measures the neighbours.
    print("| detector | recall | " + " | ".join(f"recall ({k})" for k in kinds)
          + " | false positives | ms per image | CPU ms per image |")
    print("|---|---|" + "---|" * len(kinds) + "---|---|---|")
    for name, detector in detectors().items():
        detector.detect(scenes[0].gray)  # warm-up: the first call pays for lazy cascade loading
        r = evaluate(detector, scenes)
        print(f"| {name} | {r['recall']:.1%} | " + " | ".join(f"{r['recall_' + k]:.1%}" for k in kinds)
              + f" | {r['false_positives']} | {r['ms']:.0f} | {r['cpu_ms']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
