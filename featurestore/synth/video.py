"""Synthetic scene video: banded scenes with textures, panning, moving objects, flicker (H.264).

Each class is a recipe (:data:`SCENE_VIDEO`): horizontal regions (ceiling, window, wall, floor,
sky, road ...), each a vertical colour gradient modulated by a texture (stripes, checker,
filtered noise, motion streaks, bricks, coloured blocks) and panned at its own speed, plus
objects (people, cars, poles) and a brightness flicker. The signatures live in coarse statistics
(dominant colours, brightness, saturation, texture scale and orientation), which a colour mean
or a random convolutional net with global pooling keeps. Classes paired in
:data:`featurestore.synth.corpus.VIDEO_ALIKE` share one recipe apart from a small colour delta.

A location (:func:`location_video`) rotates hues, scales gain, contrast and texture size and
shifts the horizon for all of its clips; a clip varies pan start, objects and brightness.
Geometry is given as fractions of the frame, so any size works (even width and height).
"""

from fractions import Fraction

import numpy as np

_FLICKER_LEVELS = 9


def _region(y0, y1, top, bottom, texture="none", period=0.1, contrast=0.0, speed=0.0):
    return dict(
        y=(y0, y1),
        top=top,
        bottom=bottom,
        texture=texture,
        period=period,
        contrast=contrast,
        speed=speed,
    )


def _objects(count, width, height, y_range, speed, palette):
    return dict(count=count, width=width, height=height, y=y_range, speed=speed, palette=palette)


_PEOPLE = [(40, 40, 50), (90, 60, 50), (60, 70, 90), (120, 110, 100), (30, 30, 30)]
_CARS = [(200, 30, 30), (30, 60, 200), (230, 230, 230), (20, 20, 20), (230, 200, 40)]
_SHOPS = [(220, 40, 120), (40, 180, 200), (240, 200, 40), (60, 170, 80), (235, 235, 235)]

_RAIL_CAR = dict(
    regions=[
        _region(0.0, 0.22, (150, 155, 165), (120, 125, 135)),
        _region(0.22, 0.55, (95, 105, 115), (70, 80, 90), "streaks", 0.15, 0.5, 0.8),
        _region(0.55, 1.0, (80, 95, 125), (50, 60, 80), "checker", 0.05, 0.15),
    ],
    objects=[_objects(3, 0.02, 1.0, (0.0, 0.0), 0.0, [(190, 190, 185)])],
    flicker=(7.0, 0.03),
)
_HALL = dict(
    regions=[
        _region(0.0, 0.3, (235, 232, 220), (215, 210, 200), "hstripes", 0.08, 0.1),
        _region(0.3, 0.75, (200, 195, 180), (185, 175, 160), "vstripes", 0.25, 0.35, 0.02),
        _region(0.75, 1.0, (170, 165, 150), (140, 135, 120), "checker", 0.12, 0.15),
    ],
    objects=[_objects(6, 0.04, 0.25, (0.5, 0.75), 0.06, _PEOPLE)],
    flicker=(0.0, 0.0),
)
_OPEN = dict(
    regions=[
        _region(0.0, 0.4, (150, 185, 230), (190, 210, 235), "noise", 0.2, 0.08, 0.01),
        _region(0.4, 0.55, (110, 120, 95), (100, 110, 85), "noise", 0.03, 0.3),
        _region(0.55, 1.0, (130, 135, 105), (110, 115, 90), "noise", 0.015, 0.25),
    ],
    objects=[_objects(3, 0.02, 0.1, (0.5, 0.8), 0.03, _PEOPLE)],
    flicker=(0.2, 0.03),
)


def _tinted(recipe, region, delta):
    """``recipe`` with ``delta`` (RGB) added to both colours of one region."""
    regions = [dict(r) for r in recipe["regions"]]
    for key in ("top", "bottom"):
        regions[region][key] = tuple(c + d for c, d in zip(regions[region][key], delta))
    return recipe | dict(regions=regions)


#: The video recipe of each scene.
SCENE_VIDEO = {
    "tram": _tinted(_RAIL_CAR, 1, (3, 3, 3)),
    "metro": _tinted(_RAIL_CAR, 1, (-3, -3, -3)),
    "airport": _tinted(_HALL, 2, (3, 0, -3)),
    "metro_station": _tinted(_HALL, 1, (-2, 3, 0)),
    "park": _tinted(_OPEN, 2, (-2, 3, -2)),
    "public_square": _tinted(_OPEN, 2, (2, 0, 2)),
    "street_traffic": dict(
        regions=[
            _region(0.0, 0.45, (120, 110, 100), (100, 95, 90), "vstripes", 0.1, 0.3),
            _region(0.45, 1.0, (70, 70, 75), (55, 55, 60), "hstripes", 0.18, 0.4),
        ],
        objects=[_objects(4, 0.25, 0.12, (0.5, 0.85), 0.6, _CARS)],
        flicker=(0.0, 0.0),
    ),
    "bus": dict(
        regions=[
            _region(0.0, 0.18, (200, 190, 160), (185, 175, 150)),
            _region(0.18, 0.5, (130, 125, 115), (110, 105, 100), "streaks", 0.2, 0.4, 0.4),
            _region(0.5, 1.0, (150, 55, 115), (115, 40, 90), "checker", 0.04, 0.25),
        ],
        objects=[_objects(3, 0.015, 1.0, (0.0, 0.0), 0.0, [(230, 200, 40)])],
        flicker=(0.5, 0.05),
    ),
    "shopping_mall": dict(
        regions=[
            _region(0.0, 0.25, (245, 240, 230), (235, 230, 220), "hstripes", 0.1, 0.15),
            _region(0.25, 0.7, (200, 200, 200), (170, 170, 170), "blocks", 0.2, 0.0, 0.03),
            _region(0.7, 1.0, (215, 210, 205), (180, 175, 170), "checker", 0.1, 0.08),
        ],
        objects=[_objects(5, 0.04, 0.25, (0.5, 0.75), 0.06, _PEOPLE)],
        flicker=(0.0, 0.0),
    ),
    "street_pedestrian": dict(
        regions=[
            _region(0.0, 0.65, (160, 85, 60), (140, 75, 55), "bricks", 0.03, 0.3, 0.02),
            _region(0.65, 1.0, (150, 145, 140), (120, 115, 110), "checker", 0.06, 0.15),
        ],
        objects=[_objects(8, 0.04, 0.25, (0.45, 0.75), 0.08, _PEOPLE)],
        flicker=(0.0, 0.0),
    ),
}


def location_video(rng):
    """Draw one location's camera and lighting conditions (kept for all of its clips)."""
    return dict(
        hue=rng.normal(0.0, 0.15),
        gain=float(np.exp(rng.normal(0.0, 0.1))),
        contrast=float(np.exp(rng.normal(0.0, 0.15))),
        scale=float(np.exp(rng.normal(0.0, 0.15))),
        shift=rng.normal(0.0, 0.04),
        balance=np.exp(rng.normal(0.0, 0.04, 3)),
        direction=rng.choice([-1.0, 1.0]),
    )


def render_video(scene, place, rng, *, seconds, size, fps):
    """Synthesise the frames of one clip of ``scene`` filmed at location ``place``.

    Parameters
    ----------
    scene : str
        A key of :data:`SCENE_VIDEO`.
    place : dict
        From :func:`location_video`.
    rng : numpy.random.Generator
    seconds, fps : float
    size : (int, int)
        Width and height in pixels.

    Yields
    ------
    ndarray, shape (height, width, 3), uint8
        ``round(seconds * fps)`` RGB frames (at least one), made one at a time.
    """
    recipe = SCENE_VIDEO[scene]
    width, height = size
    colour = _colour_transform(place) * np.exp(rng.normal(0.0, 0.03))
    bands = _bands(recipe["regions"], place, height)
    canvases = [
        _canvas(region, rows, width, place, colour, rng)
        for region, rows in zip(recipe["regions"], bands)
    ]
    starts = rng.uniform(0, 2 * width, len(canvases))
    movers = _place_objects(recipe["objects"], place, colour, rng, width, height)
    rate, depth = recipe["flicker"]
    phase = rng.uniform(0, 2 * np.pi)
    gains = 1.0 + depth * np.linspace(-1.0, 1.0, _FLICKER_LEVELS if depth else 1)
    # Each canvas pre-scaled at every flicker level and extended by one frame width on the
    # right, so that a frame is a few contiguous slices (no per-pixel work per frame).
    lit = [
        [
            np.clip(np.concatenate([c, c[:, :width]], axis=1) * g, 0, 255).astype(np.uint8)
            for g in gains
        ]
        for c in canvases
    ]
    for j in range(max(int(round(seconds * fps)), 1)):
        t = j / fps
        level = int(round((np.sin(2 * np.pi * rate * t + phase) + 1) / 2 * (len(gains) - 1)))
        frame = np.empty((height, width, 3), np.uint8)
        for region, (y0, y1), versions, start in zip(recipe["regions"], bands, lit, starts):
            offset = int(start + place["direction"] * region["speed"] * width * t) % (2 * width)
            frame[y0:y1] = versions[level][:, offset : offset + width]
        for x0, velocity, y0, y1, w, rgb in movers:
            x = int(round((x0 + velocity * t) % (width + w))) - w
            frame[y0:y1, max(x, 0) : max(min(x + w, width), 0)] = rgb
        yield frame


def _colour_transform(place):
    """3x3 matrix: hue rotation about the grey axis, contrast around grey, gain, white balance."""
    angle = place["hue"]
    axis = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    return place["gain"] * np.diag(place["balance"]) @ rotation


def _bands(regions, place, height):
    """Pixel rows (y0, y1) of each region, boundaries shifted by the location's camera tilt."""
    edges = [0]
    for region in regions[:-1]:
        edges.append(int(round(np.clip(region["y"][1] + place["shift"], 0.05, 0.95) * height)))
    edges.append(height)
    edges = np.maximum.accumulate(edges)
    return list(zip(edges[:-1], edges[1:]))


def _canvas(region, rows, width, place, colour, rng):
    """One region as a horizontally periodic uint8 canvas, shape (rows, 2 * width, 3)."""
    h, w = max(rows[1] - rows[0], 1), 2 * width
    gradient = np.linspace(0.0, 1.0, h)[:, None, None]
    base = (1 - gradient) * np.array(region["top"]) + gradient * np.array(region["bottom"])
    period = max(region["period"] * place["scale"] * width, 2.0)
    if region["texture"] == "blocks":
        image = base * _blocks(rng, h, w, period)[None] / 200.0
    else:
        pattern = _TEXTURES[region["texture"]](rng, h, w, period)
        image = base * (1 + region["contrast"] * place["contrast"] * pattern)[..., None]
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * place["contrast"]
    image = image @ colour.T
    return np.clip(image, 0, 255).astype(np.uint8)[: rows[1] - rows[0]]


def _periodic(period, length):
    """A period that divides ``length`` (so the canvas wraps without a seam)."""
    return length / max(round(length / period), 1)


def _stripes(rng, h, w, period, *, vertical):
    axis = np.arange(w)[None, :] if vertical else np.arange(h)[:, None]
    span = w if vertical else h
    wave = np.sin(2 * np.pi * axis / _periodic(period, span) + rng.uniform(0, 2 * np.pi))
    return np.broadcast_to(np.tanh(3 * wave), (h, w))


def _checker(rng, h, w, period):
    x = np.sin(np.pi * np.arange(w) / (_periodic(period, w) / 2))[None, :]
    y = np.sin(np.pi * (np.arange(h) + rng.uniform(0, period)) / (period / 2))[:, None]
    return np.tanh(3 * x * y)


def _filtered_noise(rng, h, w, sigma_y, sigma_x):
    """Gaussian-smoothed white noise (periodic), scaled to about [-1, 1]."""
    spectrum = np.fft.rfft2(rng.standard_normal((h, w)))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    spectrum *= np.exp(-2 * np.pi**2 * ((fy * sigma_y) ** 2 + (fx * sigma_x) ** 2))
    noise = np.fft.irfft2(spectrum, s=(h, w))
    return np.clip(noise / (2.5 * noise.std() + 1e-12), -1, 1)


def _bricks(rng, h, w, period):
    y, x = np.mgrid[0:h, 0:w]
    row = (y // period).astype(int)
    brick_x = (x + (row % 2) * period) % (2 * period)
    mortar = (y % period < max(period / 6, 1)) | (brick_x < max(period / 6, 1))
    return np.where(mortar, -1.0, 0.3) + 0.2 * _filtered_noise(rng, h, w, 1.0, 1.0)


def _blocks(rng, h, w, period):
    """Shop fronts: columns of random width ~period filled with palette colours, shape (w, 3)."""
    palette = np.array(_SHOPS, float)
    colours, filled = [], 0
    while filled < w:
        width = int(np.clip(rng.normal(period, period / 3), 2, None))
        colours += [palette[rng.integers(len(palette))]] * width
        filled += width
    return np.array(colours[:w])


_TEXTURES = {
    "none": lambda rng, h, w, period: np.zeros((h, w)),
    "vstripes": lambda rng, h, w, period: _stripes(rng, h, w, period, vertical=True),
    "hstripes": lambda rng, h, w, period: _stripes(rng, h, w, period, vertical=False),
    "checker": _checker,
    "noise": lambda rng, h, w, period: _filtered_noise(rng, h, w, period / 2, period / 2),
    "streaks": lambda rng, h, w, period: _filtered_noise(rng, h, w, period / 8, period),
    "bricks": _bricks,
}


def _place_objects(groups, place, colour, rng, width, height):
    """Objects as (x0, velocity px/s, y0, y1, width px, rgb uint8); static ones have velocity 0."""
    movers = []
    for group in groups:
        w = max(int(round(group["width"] * width)), 1)
        h = max(int(round(group["height"] * height)), 1)
        for _ in range(group["count"]):
            bottom = rng.uniform(*group["y"]) + group["height"] if group["height"] < 1 else 1.0
            y1 = int(round(min(bottom, 1.0) * height))
            rgb = np.array(group["palette"][rng.integers(len(group["palette"]))], float)
            rgb = np.clip(rgb @ colour.T, 0, 255).astype(np.uint8)
            speed = group["speed"] * width * rng.uniform(0.5, 1.5) * rng.choice([-1, 1])
            movers.append((rng.uniform(0, width + w), speed, max(y1 - h, 0), y1, w, rgb))
    return movers


def encode_video(path, frames, *, fps, crf=23, preset="ultrafast"):
    """Write RGB frames as H.264 (yuv420p) mp4 with PyAV, single-threaded (deterministic).

    Parameters
    ----------
    path : str, Path or binary file object (seekable)
    frames : iterable of ndarray, shape (height, width, 3), uint8
        At least one frame; width and height must be even.
    fps : float
    """
    import av

    target = path if hasattr(path, "write") else str(path)
    with av.open(target, "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264",
            rate=Fraction(fps).limit_denominator(1001),
            options={"preset": preset, "crf": str(crf)},
        )
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for index, image in enumerate(frames):
            if index == 0:
                stream.height, stream.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
