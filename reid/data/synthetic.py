"""A synthetic Market-1501: procedural pedestrians in the real folder layout and file names.

Market-1501 cannot be downloaded everywhere (CI machines, offline laptops), yet every
chapter needs a re-id dataset with the real structure: disjoint train and test
identities, several cameras, a query/gallery split, distractors (pid 0) and junk (pid -1).
`make_synthetic_market` draws one in seconds from a seed.

What makes it a re-id problem rather than a colour-matching one:

* identities are people: head, hair, torso, arms, legs, shoes, drawn with per-identity
  clothing colours from a *shared* palette (many people wear navy or black), patterns
  (stripes, colour blocks, an open jacket, a chest logo), sleeve and leg lengths, and
  accessories (a shoulder bag on one side, a backpack, a hat);
* the same colours in a different *arrangement* (red top over blue trousers vs blue over
  red) have the same colour histogram: only spatial features tell them apart;
* each camera has its own background, illumination, colour cast, blur, noise, JPEG
  quality and framing, and sees each person from its own viewpoint (front, back, or a
  side view, which is the mirror image of the other side), so the same person looks
  different across cameras;
* images of one person in one camera form a tracklet (consecutive frames, similar pose),
  and some are occluded by a pole, an object or another pedestrian.

The bytes depend only on the parameters and the seed: every image gets its own random
generator, derived from (seed, role, identity, camera, index), so the result is the same
whether it is drawn by one process or many.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .market1501 import SPLITS

# Market-1501 images are 128 x 64 pixels; we draw at twice that and downsample (anti-aliasing).
HEIGHT, WIDTH = 128, 64
_SS = 2  # super-sampling factor
_H, _W = HEIGHT * _SS, WIDTH * _SS

# Clothing palette, shared by all identities (RGB). Repeats across people are intended.
TOP_COLOURS = np.array(
    [
        (20, 20, 24), (235, 235, 230), (150, 150, 155), (30, 40, 90), (180, 30, 35),
        (40, 90, 170), (35, 110, 60), (230, 190, 40), (220, 110, 150), (120, 60, 140),
        (230, 120, 30), (110, 75, 45), (90, 170, 200), (190, 170, 130),
    ],
    dtype=np.float32,
)
BOTTOM_COLOURS = np.array(
    [
        (25, 25, 30), (45, 60, 110), (70, 100, 150), (120, 120, 125), (190, 170, 130),
        (225, 225, 220), (60, 70, 50), (100, 65, 45), (150, 40, 45),
    ],
    dtype=np.float32,
)
SKIN_TONES = np.array(
    [(245, 210, 185), (225, 180, 150), (195, 145, 110), (160, 110, 80), (120, 80, 55), (90, 60, 40)],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [(20, 15, 10), (60, 40, 25), (110, 75, 40), (200, 170, 110), (150, 150, 150), (130, 60, 30)],
    dtype=np.float32,
)
SHOE_COLOURS = np.array([(20, 20, 20), (235, 235, 235), (100, 70, 45), (60, 60, 70), (180, 40, 40)], dtype=np.float32)
BACKGROUNDS = ("street", "grass", "indoor", "brick", "plaza", "shop")


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and difficulty of a synthetic Market-1501. Counts are identities or images."""

    num_train_ids: int = 150  # identities in bounding_box_train
    num_test_ids: int = 150  # identities in query/ and bounding_box_test (disjoint from train)
    num_cameras: int = 6  # cameras c1..cN (Market-1501 has 6)
    cams_per_id: tuple[int, int] = (2, 5)  # each identity is seen by this many cameras (inclusive)
    images_per_camera: tuple[int, int] = (2, 5)  # images of one identity in one camera (inclusive)
    num_distractors: int = 300  # gallery images of pid 0: background and people outside the test set
    num_junk: int = 100  # gallery images of pid -1: fragments that the protocol ignores
    occlusion: float = 1.0  # scales every camera's occlusion probability
    jpeg_quality: tuple[int, int] = (75, 95)  # range of per-camera JPEG quality

    def validate(self) -> "SyntheticSpec":
        problems = []
        if self.num_train_ids < 1 or self.num_test_ids < 1:
            problems.append("num_train_ids and num_test_ids must be >= 1")
        if self.num_train_ids + self.num_test_ids > 9998:
            problems.append("at most 9998 identities fit the 4-digit pid of the file-name grammar")
        if not 2 <= self.num_cameras <= 9:
            problems.append(f"num_cameras={self.num_cameras}: the grammar's c<N> has one digit and re-id needs >= 2")
        lo, hi = self.cams_per_id
        if not 2 <= lo <= hi <= self.num_cameras:
            problems.append(f"cams_per_id={self.cams_per_id} must satisfy 2 <= low <= high <= num_cameras")
        lo, hi = self.images_per_camera
        if not 2 <= lo <= hi:
            problems.append(f"images_per_camera={self.images_per_camera}: need >= 2 (one query, one gallery image)")
        if self.num_distractors < 0 or self.num_junk < 0 or self.occlusion < 0:
            problems.append("num_distractors, num_junk and occlusion must be >= 0")
        if problems:
            raise ValueError("Invalid SyntheticSpec: " + "; ".join(problems))
        return self


PRESETS = {
    # unit tests: a few hundred images, well under a second
    "tiny": SyntheticSpec(num_train_ids=24, num_test_ids=24, num_cameras=4, cams_per_id=(2, 3),
                          images_per_camera=(2, 3), num_distractors=20, num_junk=10),
    # the default of the book and CI: a few thousand images, a few seconds
    "small": SyntheticSpec(),
    # Market-1501's scale: 751 + 750 identities, about 13.5k train, 3.4k query and 13k gallery images
    # (Market-1501: 12,936 / 3,368 / 15,913), plus junk
    "market": SyntheticSpec(num_train_ids=751, num_test_ids=750, cams_per_id=(3, 6), images_per_camera=(2, 6),
                            num_distractors=2800, num_junk=3800),
}


# --------------------------------------------------------------------------------------
# Random draws: identities, cameras, images
# --------------------------------------------------------------------------------------
_ROLE = {"identity": 1, "camera": 2, "image": 3, "distractor": 4, "junk": 5, "plan": 6}


def _rng(seed: int, role: str, *keys: int) -> np.random.Generator:
    """An independent generator for one (seed, role, keys) tuple: order-free determinism."""
    return np.random.default_rng([seed, _ROLE[role], *keys])


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> tuple[int, int, int]:
    c = colour * rng.uniform(1 - amount, 1 + amount) + rng.normal(0, amount * 40, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _pick(rng: np.random.Generator, palette: np.ndarray, amount: float = 0.08) -> tuple[int, int, int]:
    return _jitter(rng, palette[rng.integers(len(palette))], amount)


def draw_identity(seed: int, pid: int) -> dict:
    """The appearance of one person: colours, build, garments and accessories."""
    rng = _rng(seed, "identity", pid)
    top = _pick(rng, TOP_COLOURS)
    second = _pick(rng, TOP_COLOURS)
    while np.abs(np.subtract(top, second)).sum() < 120:  # a visible pattern needs contrast
        second = _pick(rng, TOP_COLOURS)
    return {
        "height": rng.uniform(0.86, 1.0),
        "build": rng.uniform(0.85, 1.15),
        "skin": _pick(rng, SKIN_TONES, 0.04),
        "hair": _pick(rng, HAIR_COLOURS, 0.05),
        "long_hair": bool(rng.random() < 0.3),
        "hat": _pick(rng, TOP_COLOURS) if rng.random() < 0.15 else None,
        "top": top,
        "top2": second,
        "pattern": str(rng.choice(["solid", "stripes", "block", "jacket", "logo"], p=[0.4, 0.17, 0.13, 0.15, 0.15])),
        "stripe": int(rng.integers(5, 10)),
        "long_sleeves": bool(rng.random() < 0.55),
        "bottom": _pick(rng, BOTTOM_COLOURS),
        "legwear": str(rng.choice(["trousers", "shorts", "skirt"], p=[0.65, 0.2, 0.15])),
        "shoes": _pick(rng, SHOE_COLOURS, 0.05),
        "backpack": _pick(rng, TOP_COLOURS) if rng.random() < 0.25 else None,
        "bag": _pick(rng, BOTTOM_COLOURS + 20) if rng.random() < 0.25 else None,
        "bag_side": int(rng.choice([-1, 1])),  # the person's right (-1) or left (+1)
    }


def draw_camera(seed: int, cam: int, spec: SyntheticSpec) -> dict:
    """Fixed nuisances of one camera: scene, light, optics and framing."""
    rng = _rng(seed, "camera", cam)
    return {
        # three scenes per camera, drawn from six kinds shared by all cameras: a scene type
        # alone does not give the camera away, its light and colour cast do
        "scenes": [(BACKGROUNDS[k], int(rng.integers(2**31))) for k in rng.choice(len(BACKGROUNDS), 3, replace=False)],
        "gain": rng.uniform(0.75, 1.25),
        "cast": rng.uniform(0.88, 1.12, 3),
        "gamma": rng.uniform(0.85, 1.2),
        "blur": rng.uniform(0.0, 1.0),
        "noise": rng.uniform(1.0, 6.0),
        "quality": int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1)),
        "scale": rng.uniform(0.84, 0.95),
        "occlusion": min(0.9, rng.uniform(0.08, 0.25) * spec.occlusion),
        "views": rng.dirichlet(np.ones(3) * 2.0),  # preference for front / back / side
    }


# --------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------
def _background(kind: str, seed: int, variant: int) -> Image.Image:
    """A scene larger than the crop, so framing jitter moves it."""
    rng = np.random.default_rng([seed, variant])
    w, h = _W + 32, _H + 32
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.45, 0.65))

    def col(base, amount=0.12):
        return _jitter(rng, np.asarray(base, dtype=np.float32), amount)

    if kind == "street":
        d.rectangle([0, 0, w, horizon], fill=col((150, 150, 140)))
        for _ in range(4):  # windows and doors
            x, y = rng.integers(0, w), rng.integers(0, horizon - 20)
            d.rectangle([x, y, x + rng.integers(12, 40), y + rng.integers(15, 45)], fill=col((70, 80, 95)))
        d.rectangle([0, horizon, w, h], fill=col((110, 110, 110)))
        for y in range(horizon, h, 18):
            d.line([0, y, w, y], fill=col((90, 90, 90)), width=2)
    elif kind == "grass":
        d.rectangle([0, 0, w, horizon], fill=col((150, 185, 215)))
        for _ in range(5):  # trees
            x = rng.integers(-10, w)
            r = rng.integers(14, 30)
            d.ellipse([x - r, horizon - 2 * r, x + r, horizon + 4], fill=col((50, 100, 45)))
        d.rectangle([0, horizon, w, h], fill=col((85, 140, 70)))
        d.rectangle([0, int(h * 0.8), w, int(h * 0.86)], fill=col((170, 160, 140)))  # a path
    elif kind == "indoor":
        d.rectangle([0, 0, w, horizon], fill=col((215, 205, 180)))
        d.rectangle([0, horizon, w, h], fill=col((160, 120, 90)))
        for x in range(0, w, 26):
            d.line([x, horizon, x + (x - w // 2) // 2, h], fill=col((130, 95, 70)), width=2)
        x = rng.integers(0, w - 30)
        d.rectangle([x, horizon - 60, x + 28, horizon], fill=col((120, 90, 60)))  # a door
    elif kind == "brick":
        base = col((160, 80, 60))
        d.rectangle([0, 0, w, h], fill=base)
        for row, y in enumerate(range(0, horizon, 10)):
            d.line([0, y, w, y], fill=col((200, 190, 180)), width=1)
            for x in range((row % 2) * 10, w, 20):
                d.line([x, y, x, y + 10], fill=col((200, 190, 180)), width=1)
        d.rectangle([0, horizon, w, h], fill=col((120, 115, 105)))
    elif kind == "plaza":
        d.rectangle([0, 0, w, h], fill=col((200, 195, 185)))
        for y in range(horizon, h, 24):
            for x in range((y // 24 % 2) * 24, w, 48):
                d.rectangle([x, y, x + 24, y + 24], fill=col((170, 165, 150)))
        d.rectangle([0, 0, w, horizon // 2], fill=col((110, 130, 150)))
    else:  # shop front
        d.rectangle([0, 0, w, horizon], fill=col((60, 60, 70)))
        for x in range(0, w, 40):
            d.rectangle([x + 3, 10, x + 36, horizon - 10], fill=col((170, 200, 210), 0.2))
        d.rectangle([0, horizon, w, h], fill=col((140, 140, 145)))
    for _ in range(int(rng.integers(1, 4))):  # clutter: poles, signs, bins
        x = int(rng.integers(0, w))
        d.rectangle([x, int(rng.integers(0, horizon)), x + int(rng.integers(2, 6)), h], fill=col((80, 80, 80), 0.4))
    return img


def _poly(d: ImageDraw.ImageDraw, pts, fill) -> None:
    d.polygon([(float(x), float(y)) for x, y in pts], fill=fill)


def _limb(d: ImageDraw.ImageDraw, x0, y0, x1, y1, width, fill) -> None:
    """A limb as a quadrilateral from (x0, y0) to (x1, y1) with the given width."""
    dx, dy = x1 - x0, y1 - y0
    n = max(np.hypot(dx, dy), 1e-6)
    ox, oy = -dy / n * width / 2, dx / n * width / 2
    _poly(d, [(x0 + ox, y0 + oy), (x1 + ox, y1 + oy), (x1 - ox, y1 - oy), (x0 - ox, y0 - oy)], fill)


def draw_person(d: ImageDraw.ImageDraw, who: dict, view: str, cx: float, foot: float, height: float,
                stride: float, swing: float) -> None:
    """Draw one pedestrian facing `view` ('front', 'back', or 'side': facing right).

    `cx`, `foot`: horizontal centre and foot line in pixels; `height`: body height in
    pixels; `stride`, `swing`: walking phase of the legs and arms, in [-1, 1].
    """
    u = height * who["height"]
    top = foot - u
    side = view == "side"
    sw = u * (0.085 if side else 0.14 * who["build"])  # half shoulder width
    hw = u * (0.08 if side else 0.11 * who["build"])  # half hip width
    y = lambda f: top + f * u  # noqa: E731 - a fraction of the body height to a pixel row
    skin, top_c, bottom = who["skin"], who["top"], who["bottom"]
    arm_w, leg_w = 0.055 * u, 0.075 * u
    sleeve_end = 0.48 if who["long_sleeves"] else 0.28

    # Backpack seen from the front: straps only; from the side: a block behind; drawn first.
    if who["backpack"] and side:
        d.rectangle([cx - sw - 0.09 * u, y(0.17), cx - sw + 0.02 * u, y(0.43)], fill=who["backpack"])

    # Legs (trousers, shorts or bare legs under a skirt), then shoes.
    legs = [(-1, stride), (1, -stride)]
    for s, phase in legs:
        hip_x = cx + (0 if side else s * hw * 0.5)
        foot_x = hip_x + phase * u * (0.12 if side else 0.04)
        _limb(d, hip_x, y(0.5), foot_x, y(0.96), leg_w, skin)
        end = {"trousers": 0.94, "shorts": 0.66, "skirt": 0.5}[who["legwear"]]
        if end > 0.5:
            t = (end - 0.5) / 0.46
            _limb(d, hip_x, y(0.5), hip_x + t * (foot_x - hip_x), y(end), leg_w * 1.1, bottom)
        d.ellipse([foot_x - 0.045 * u + (0.02 * u if side else 0), y(0.94), foot_x + 0.045 * u + (0.02 * u if side else 0),
                   y(1.0)], fill=who["shoes"])
    if who["legwear"] == "skirt":
        _poly(d, [(cx - hw, y(0.47)), (cx + hw, y(0.47)), (cx + hw * 1.5, y(0.68)), (cx - hw * 1.5, y(0.68))], bottom)
    else:
        d.rectangle([cx - hw, y(0.47), cx + hw, y(0.56)], fill=bottom)  # the seat of the trousers

    # Arms behind the torso in side view.
    arm_targets = [(-1, swing), (1, -swing)]
    if side:
        _limb(d, cx, y(0.16), cx - swing * 0.12 * u, y(0.5), arm_w, skin)
        _limb(d, cx, y(0.16), cx - swing * 0.08 * u, y(sleeve_end), arm_w * 1.1, top_c)

    # Torso with its pattern.
    t_top, t_bot = y(0.145), y(0.51)
    _poly(d, [(cx - sw, t_top), (cx + sw, t_top), (cx + hw * 1.05, t_bot), (cx - hw * 1.05, t_bot)], top_c)

    def half_width(yy: float) -> float:
        f = (yy - t_top) / (t_bot - t_top)
        return sw + f * (hw * 1.05 - sw)

    pattern, second = who["pattern"], who["top2"]
    if pattern == "stripes":
        step = (t_bot - t_top) / who["stripe"]
        for i in range(1, who["stripe"], 2):
            ya, yb = t_top + i * step, t_top + (i + 1) * step
            w_ = min(half_width(ya), half_width(yb))
            d.rectangle([cx - w_, ya, cx + w_, yb], fill=second)
    elif pattern == "block":
        ym = (t_top + t_bot) / 2
        _poly(d, [(cx - half_width(ym), ym), (cx + half_width(ym), ym), (cx + hw * 1.05, t_bot),
                  (cx - hw * 1.05, t_bot)], second)
    elif pattern == "jacket" and view == "front":
        d.rectangle([cx - sw * 0.3, t_top + 2, cx + sw * 0.3, t_bot], fill=second)
    elif pattern == "jacket" and side:
        d.rectangle([cx + sw * 0.55, t_top + 2, cx + sw, t_bot], fill=second)
    elif pattern == "logo" and view == "front":
        r = 0.055 * u
        d.ellipse([cx - r, y(0.25) - r, cx + r, y(0.25) + r], fill=second)
    elif pattern == "logo" and view == "back":
        d.rectangle([cx - sw * 0.6, y(0.2), cx + sw * 0.6, y(0.26)], fill=second)  # a name across the back

    # Backpack: on the back, or straps on the front.
    if who["backpack"]:
        if view == "back":
            d.rounded_rectangle([cx - sw * 0.8, y(0.17), cx + sw * 0.8, y(0.44)], radius=0.03 * u, fill=who["backpack"])
        elif view == "front":
            for s in (-1, 1):
                _limb(d, cx + s * sw * 0.6, t_top, cx + s * sw * 0.55, y(0.4), 0.025 * u, who["backpack"])

    # Arms at the sides (front/back views) or in front (side view).
    if side:
        _limb(d, cx, y(0.16), cx + swing * 0.12 * u, y(0.5), arm_w, skin)
        _limb(d, cx, y(0.16), cx + swing * 0.08 * u, y(sleeve_end), arm_w * 1.1, top_c)
    else:
        for s, phase in arm_targets:
            x0 = cx + s * (sw + arm_w * 0.3)
            x1 = x0 + s * 0.02 * u + phase * 0.02 * u
            _limb(d, x0, y(0.16), x1, y(0.5), arm_w, skin)
            _limb(d, x0, y(0.16), x0 + (x1 - x0) * (sleeve_end - 0.16) / 0.34, y(sleeve_end), arm_w * 1.15, top_c)

    # Shoulder bag: its side is the person's; front and back views see it on opposite sides.
    if who["bag"]:
        s = who["bag_side"] * (-1 if view == "front" else 1)
        if side:
            if who["bag_side"] > 0:  # on the side facing the camera
                d.rectangle([cx - 0.06 * u, y(0.4), cx + 0.05 * u, y(0.56)], fill=who["bag"])
        else:
            bx = cx + s * (sw + 0.02 * u)
            _limb(d, cx - s * sw * 0.7, t_top, bx, y(0.42), 0.018 * u, who["bag"])
            d.rectangle([bx - 0.06 * u, y(0.4), bx + 0.06 * u, y(0.55)], fill=who["bag"])

    # Head, hair and hat.
    r = 0.062 * u
    hx, hy = cx + (0.015 * u if side else 0), y(0.075)
    d.rectangle([cx - 0.025 * u, y(0.11), cx + 0.025 * u, y(0.15)], fill=skin)  # neck
    if who["long_hair"] and view != "front":
        d.rectangle([hx - r, hy, hx + r * (0.2 if side else 1), y(0.22)], fill=who["hair"])
    d.ellipse([hx - r, hy - r, hx + r, hy + r], fill=who["hair"] if view == "back" else skin)
    if view == "front":
        d.chord([hx - r, hy - r, hx + r, hy + r * 0.4], 180, 360, fill=who["hair"])
    elif side:
        d.pieslice([hx - r, hy - r, hx + r, hy + r], 110, 300, fill=who["hair"])
    if who["hat"]:
        d.chord([hx - r * 1.05, hy - r * 1.25, hx + r * 1.05, hy + r * 0.3], 180, 360, fill=who["hat"])
        d.rectangle([hx - r * 1.3, hy - r * 0.15, hx + r * 1.3, hy + r * 0.05], fill=who["hat"])


def _occluder(d: ImageDraw.ImageDraw, rng: np.random.Generator, seed: int) -> None:
    kind = rng.choice(["pole", "object", "pedestrian"], p=[0.35, 0.35, 0.3])
    grey = tuple(int(v) for v in rng.integers(30, 200, 3))
    if kind == "pole":
        x = rng.uniform(0.1, 0.9) * _W
        w = rng.uniform(0.06, 0.14) * _W
        d.rectangle([x - w / 2, 0, x + w / 2, _H], fill=grey)
    elif kind == "object":  # a bench, a bin or a car in front of the legs
        y0 = rng.uniform(0.62, 0.82) * _H
        x0 = rng.uniform(-0.3, 0.3) * _W
        d.rounded_rectangle([x0, y0, x0 + rng.uniform(0.6, 1.2) * _W, _H + 10], radius=8, fill=grey)
    else:  # another pedestrian walking past, at the image border
        other = draw_identity(seed, 100_000 + int(rng.integers(100_000)))
        cx = rng.choice([-1, 1]) * rng.uniform(0.45, 0.6) * _W + _W / 2
        draw_person(d, other, str(rng.choice(["front", "back", "side"])), cx, _H * rng.uniform(0.98, 1.05),
                    _H * 0.92, rng.uniform(-1, 1), rng.uniform(-1, 1))


_CHANNEL = np.arange(3)[None, None, :]


def _portable(x: np.ndarray) -> np.ndarray:
    """`x` rounded to a multiple of 2**-12, as float32: the same on every CPU.

    Two CPUs whose results differ in the last bits of a float64 round differently only when
    `x` lies within those bits of a midpoint between grid points: for values up to 255, a
    chance of about 2**-30 per value, where a plain cast to float32 would differ about once
    in 2**28 values, and the pixels computed from it about once in 2**16.
    """
    return (np.round(x * 4096.0) / 4096.0).astype(np.float32)


def _finish(img: Image.Image, cam: dict, rng: np.random.Generator) -> Image.Image:
    """Camera nuisance on the final 128 x 64 image: light, colour cast, blur, noise."""
    img = img.reduce(_SS)
    if cam["blur"] > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(cam["blur"] * rng.uniform(0.7, 1.3)))
    # (x * gain * cast * ramp) ** gamma == (x * gain * cast) ** gamma * ramp ** gamma: a lookup table
    # per channel for the first factor, one multiply per row for the second.
    # Powers are taken in float64 and rounded to a coarse grid (`_portable`): NumPy's SIMD power
    # kernels differ between CPUs (AVX-512, AVX2, SSE) in the last bits, which would flip pixels.
    gain = cam["gain"] * rng.uniform(0.88, 1.12) * cam["cast"]  # (3,)
    levels = np.arange(256, dtype=np.float64)[None, :] / 255.0
    lut = _portable(np.clip(levels * gain[:, None], 0, 1) ** cam["gamma"] * 255.0)  # (3, 256)
    a = lut[_CHANNEL, np.asarray(img)]  # (128, 64, 3) float32
    ramp = _portable(np.linspace(1.08, 0.92, HEIGHT) ** (rng.uniform(-1, 1) * cam["gamma"]))  # light from above
    a *= ramp[:, None, None]
    a += rng.standard_normal(a.shape, dtype=np.float32) * np.float32(cam["noise"])
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


class _Renderer:
    """Draws images for one dataset: holds the per-camera scenes of a process."""

    def __init__(self, seed: int, spec: SyntheticSpec):
        self.seed, self.spec = seed, spec
        self.cams = {c: draw_camera(seed, c, spec) for c in range(1, spec.num_cameras + 1)}
        self.people: dict[int, dict] = {}
        self.scenes = {c: [_background(kind, s, 0) for kind, s in cam["scenes"]] for c, cam in self.cams.items()}

    def scene(self, cam: int, rng: np.random.Generator, which: int | None = None) -> Image.Image:
        """A crop of one of the camera's scenes (`which`, else a random one) at a random offset."""
        bg = self.scenes[cam][int(rng.integers(3)) if which is None else which]
        x, y = int(rng.integers(0, 33)), int(rng.integers(0, 33))
        return bg.crop((x, y, x + _W, y + _H))

    def person(self, job: dict) -> Image.Image:
        cam = self.cams[job["cam"]]
        rng = _rng(self.seed, "image", job["pid"], job["cam"], job["index"])
        img = self.scene(job["cam"], rng, job["scene"])
        d = ImageDraw.Draw(img)
        if job["pid"] not in self.people:
            self.people[job["pid"]] = draw_identity(self.seed, job["pid"])
        who = self.people[job["pid"]]
        view = job["view"] if rng.random() > 0.15 else str(rng.choice(["front", "back", "side"]))
        mirror = job["mirror"]
        scale = cam["scale"] * rng.uniform(0.93, 1.07)
        cx = _W / 2 + rng.normal(0, 0.05) * _W
        foot = _H * (0.5 + scale / 2) + rng.normal(0, 0.02) * _H
        phase = job["phase"] + 0.35 * job["index"]  # a tracklet walks on from frame to frame
        draw_person(d, who, view, cx, foot, _H * scale, float(np.sin(phase)), float(np.sin(phase + np.pi)))
        if mirror:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            d = ImageDraw.Draw(img)
        if rng.random() < cam["occlusion"]:
            _occluder(d, rng, self.seed)
        return _finish(img, cam, rng)

    def distractor(self, job: dict) -> Image.Image:
        """pid 0: empty scenes, half-seen people, and people outside the test set."""
        rng = _rng(self.seed, "distractor", job["index"])
        img = self.scene(job["cam"], rng)
        d = ImageDraw.Draw(img)
        kind = rng.random()
        if kind > 0.35:
            who = draw_identity(self.seed, 50_000 + job["index"])
            off = 0.0 if kind > 0.7 else rng.choice([-1, 1]) * rng.uniform(0.3, 0.5) * _W
            height = _H * (rng.uniform(0.8, 0.95) if kind > 0.7 else rng.uniform(1.0, 1.6))
            draw_person(d, who, str(rng.choice(["front", "back", "side"])), _W / 2 + off,
                        _H * rng.uniform(0.95, 1.3), height, rng.uniform(-1, 1), rng.uniform(-1, 1))
        if rng.random() < 0.3:
            _occluder(d, rng, self.seed)
        return _finish(img, self.cams[job["cam"]], rng)

    def junk(self, job: dict) -> Image.Image:
        """pid -1: fragments (a pair of legs, a shoulder) that the Market protocol ignores."""
        rng = _rng(self.seed, "junk", job["index"])
        img = self.scene(job["cam"], rng)
        d = ImageDraw.Draw(img)
        who = draw_identity(self.seed, 70_000 + job["index"])
        height = _H * rng.uniform(1.8, 3.0)
        foot = _H * rng.choice([1.0, 2.2]) + rng.uniform(-0.1, 0.1) * _H
        draw_person(d, who, str(rng.choice(["front", "back", "side"])), _W / 2 + rng.normal(0, 0.15) * _W, foot,
                    height, rng.uniform(-1, 1), rng.uniform(-1, 1))
        return _finish(img, self.cams[job["cam"]], rng)

    def render(self, job: dict) -> Image.Image:
        return {"person": self.person, "distractor": self.distractor, "junk": self.junk}[job["kind"]](job)


# --------------------------------------------------------------------------------------
# The plan: which images exist and what they are called
# --------------------------------------------------------------------------------------
def plan_dataset(spec: SyntheticSpec, seed: int) -> list[dict]:
    """Every image of the dataset as a job: its folder, file name and what to draw.

    Follows Market-1501: each identity is seen by several cameras as a tracklet
    (sequence `s`, increasing frame numbers); for a test identity one image per camera
    becomes a query and the rest go to the gallery, so every query keeps a true match
    in another camera.
    """
    spec.validate()
    rng = _rng(seed, "plan")
    cams = list(range(1, spec.num_cameras + 1))
    camera = {c: draw_camera(seed, c, spec) for c in cams}
    views = ("front", "back", "side")
    pids = rng.permutation(np.arange(1, 1 + spec.num_train_ids + spec.num_test_ids))
    train_pids = set(int(p) for p in pids[: spec.num_train_ids])
    jobs: list[dict] = []
    taken: set[str] = set()

    def name(pid: int, cam: int, seq: int, frame: int) -> str:
        box = 1
        while True:
            pid_str = "-1" if pid == -1 else f"{pid:04d}"
            n = f"{pid_str}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"
            if n not in taken:
                taken.add(n)
                return n
            box += 1

    for pid in sorted(int(p) for p in pids):
        n_cams = int(rng.integers(spec.cams_per_id[0], spec.cams_per_id[1] + 1))
        seen_by = sorted(int(c) for c in rng.choice(cams, size=n_cams, replace=False))
        for cam in seen_by:
            n_img = int(rng.integers(spec.images_per_camera[0], spec.images_per_camera[1] + 1))
            seq = int(rng.integers(1, 7))
            frame = int(rng.integers(1, 200_000))
            view = str(rng.choice(views, p=camera[cam]["views"]))
            mirror = bool(rng.random() < 0.5) if view == "side" else False
            phase = float(rng.uniform(0, 2 * np.pi))
            scene = int(rng.integers(3))  # a tracklet stays in one place of the camera's view
            query_index = int(rng.integers(n_img))
            for i in range(n_img):
                if pid in train_pids:
                    split = "bounding_box_train"
                else:
                    split = "query" if i == query_index else "bounding_box_test"
                jobs.append({"kind": "person", "pid": pid, "cam": cam, "index": i, "view": view, "mirror": mirror,
                             "phase": phase, "scene": scene, "split": split, "name": name(pid, cam, seq, frame)})
                frame += int(rng.integers(5, 60))
    for kind, pid, count in (("distractor", 0, spec.num_distractors), ("junk", -1, spec.num_junk)):
        for i in range(count):
            cam = int(rng.integers(1, spec.num_cameras + 1))
            jobs.append({"kind": kind, "pid": pid, "cam": cam, "index": i, "split": "bounding_box_test",
                         "name": name(pid, cam, int(rng.integers(1, 7)), int(rng.integers(1, 200_000)))})
    return jobs


# --------------------------------------------------------------------------------------
# Writing, in parallel, into a cache keyed by the parameters
# --------------------------------------------------------------------------------------
_WORKER: _Renderer | None = None


def _init_worker(seed: int, spec: SyntheticSpec) -> None:
    global _WORKER
    _WORKER = _Renderer(seed, spec)


def _write_jobs(args: tuple[str, list[dict]]) -> int:
    out, jobs = args
    assert _WORKER is not None
    for job in jobs:
        img = _WORKER.render(job)
        img.save(os.path.join(out, job["split"], job["name"]), quality=_WORKER.cams[job["cam"]]["quality"])
    return len(jobs)


def _cache_key(spec: SyntheticSpec, seed: int) -> str:
    """Parameters and the generator's own source: a change to either makes a new folder."""
    source = inspect.getsource(sys.modules[__name__])
    blob = json.dumps({"spec": dataclasses.asdict(spec), "seed": seed}, sort_keys=True) + source
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def make_synthetic_market(
    root: str | os.PathLike,
    preset: str | SyntheticSpec = "small",
    seed: int = 0,
    *,
    workers: int | None = None,
    force: bool = False,
    verbose: bool = True,
) -> Path:
    """Write (or reuse) a synthetic Market-1501 under `root` and return its folder.

    The folder holds `bounding_box_train/`, `query/` and `bounding_box_test/` with file
    names in Market's grammar, so `Market1501(folder)` reads it like the real one. Its
    name carries the preset, the seed and a hash of the parameters and of this module's
    source, so a cached copy is reused only when it would be byte-identical.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {', '.join(PRESETS)} "
                             "or pass a SyntheticSpec")
        spec, label = PRESETS[preset], preset
    else:
        spec, label = preset, "custom"
    spec.validate()
    root = Path(root).expanduser()
    folder = root / f"synthetic-market-{label}-seed{seed}-{_cache_key(spec, seed)}"
    if (folder / "params.json").is_file() and not force:
        return folder
    root.mkdir(parents=True, exist_ok=True)
    jobs = plan_dataset(spec, seed)
    tmp = root / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for split in SPLITS.values():
        (tmp / split).mkdir(parents=True)
    start = time.perf_counter()
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    size = max(32, min(256, -(-len(jobs) // (4 * workers))))  # ~4 chunks per worker, 32..256 images each
    chunks = [(str(tmp), jobs[i : i + size]) for i in range(0, len(jobs), size)]
    if workers > 1 and len(chunks) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker,
                                 initargs=(seed, spec)) as pool:
            done = sum(pool.map(_write_jobs, chunks))
    else:
        _init_worker(seed, spec)
        done = sum(_write_jobs(c) for c in chunks)
    seconds = time.perf_counter() - start
    meta = {"preset": label, "seed": seed, "spec": dataclasses.asdict(spec), "images": done,
            "generator": "reid.data.synthetic"}
    (tmp / "params.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    if force and folder.exists():
        shutil.rmtree(folder)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same folder first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "params.json").is_file():
            raise
    if verbose:
        print(f"=> synthetic Market-1501 ({label}, seed {seed}): {done} images in {seconds:.1f} s -> {folder}")
    return folder
