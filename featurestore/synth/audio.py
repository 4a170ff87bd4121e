"""Synthetic scene audio: coloured background, sound events, reverberation (48 kHz stereo).

Each class is a recipe (:data:`SCENE_AUDIO`): a background spectral envelope (tilt in dB per
octave plus Gaussian bumps on a log-frequency axis), a slow loudness modulation, sound events
(clicks, chirps, harmonic tones, voices, thumps, squeals, swells) at Poisson times, a
reverberation time and a level. The signatures are coarse: band energies and spectral tilt
(kept by a mean log-mel) and spectro-temporal texture (babble, hum lines, click trains, squeals,
chirps, swells: kept by a random convolutional net on a per-window dB spectrogram with global
pooling, which loses level and most of the frequency position). Classes paired in
:data:`featurestore.synth.corpus.AUDIO_ALIKE` share one recipe apart from a 1 dB band.

A location (:func:`location_audio`) perturbs the envelope (tilt, one random bump), the level and
the reverberation consistently for all of its clips; a clip varies levels, event times and
pitches. Everything is drawn from the ``numpy.random.Generator`` passed in (deterministic).
"""

import math

import numpy as np

SAMPLE_RATE = 48000


def _recipe(level, tilt, bands, events, reverb, wet, modulation):
    return dict(
        level=level,
        tilt=tilt,
        bands=bands,
        events=events,
        reverb=reverb,
        wet=wet,
        modulation=modulation,
    )


# Events: (kind, rate per second, level dB re background, (f_low, f_high) Hz, (d_min, d_max) s).
# Groups differ in spectral tilt and in spectro-temporal texture (babble, hum lines, clicks,
# squeals, chirps, swells), which survive a per-window dB normalisation and global pooling.
_HALL = _recipe(
    -28,
    -4.0,
    [(500, 0.8, 14.0), (130, 0.6, 4.0)],
    [("voice", 3.0, 2.0, (110, 240), (0.3, 0.8)), ("tone", 0.12, 8.0, (520, 700), (0.6, 1.0))],
    reverb=1.6,
    wet=0.6,
    modulation=(3.0, 0.15),
)
_VEHICLE = _recipe(
    -24,
    -9.0,
    [(60, 0.7, 18.0), (300, 1.0, 6.0)],
    [("tone", 0.5, 10.0, (40, 60), (2.0, 4.0)), ("thump", 0.3, 6.0, (40, 70), (0.2, 0.4))],
    reverb=0.35,
    wet=0.3,
    modulation=(0.15, 0.35),
)
_VOICES = _recipe(
    -30,
    -1.5,
    [(1200, 1.2, 10.0)],
    [
        ("click", 3.0, 12.0, (1500, 8000), (0.008, 0.015)),
        ("voice", 0.8, 6.0, (120, 260), (0.3, 0.8)),
    ],
    reverb=0.5,
    wet=0.15,
    modulation=(0.5, 0.2),
)

#: The audio recipe of each scene.
SCENE_AUDIO = {
    "airport": _HALL | dict(bands=_HALL["bands"] + [(130, 0.6, 1.0)]),
    "shopping_mall": _HALL | dict(bands=_HALL["bands"] + [(2200, 0.6, 1.0)]),
    "bus": _VEHICLE | dict(bands=_VEHICLE["bands"] + [(180, 0.3, 1.0)]),
    "tram": _VEHICLE | dict(bands=_VEHICLE["bands"] + [(1500, 0.3, 1.0)]),
    "street_pedestrian": _VOICES | dict(bands=_VOICES["bands"] + [(3000, 0.7, 1.0)]),
    "public_square": _VOICES | dict(bands=_VOICES["bands"] + [(300, 0.7, 1.0)]),
    "metro": _recipe(
        -20,
        -5.0,
        [(100, 1.0, 14.0), (4000, 0.5, 10.0)],
        [("squeal", 0.4, 14.0, (3000, 5000), (1.0, 3.0))],
        reverb=0.5,
        wet=0.3,
        modulation=(0.1, 0.4),
    ),
    "metro_station": _recipe(
        -27,
        -3.0,
        [(250, 0.6, 10.0), (2500, 0.4, 10.0)],
        [
            ("voice", 0.15, 8.0, (150, 220), (1.5, 2.5)),
            ("click", 1.0, 3.0, (1500, 8000), (0.01, 0.02)),
        ],
        reverb=2.2,
        wet=0.7,
        modulation=(0.2, 0.3),
    ),
    "park": _recipe(
        -36,
        1.0,
        [(150, 1.0, 4.0), (4500, 0.6, 6.0)],
        [("chirp", 3.0, 15.0, (2500, 7000), (0.08, 0.2))],
        reverb=0.0,
        wet=0.0,
        modulation=(0.3, 0.4),
    ),
    "street_traffic": _recipe(
        -16,
        -4.0,
        [(80, 1.0, 8.0), (1000, 1.2, 14.0)],
        [
            ("swell", 0.4, 8.0, (1000, 1000), (1.0, 3.0)),
            ("tone", 0.1, 8.0, (380, 450), (0.4, 0.8)),
        ],
        reverb=0.3,
        wet=0.1,
        modulation=(0.12, 0.7),
    ),
}


def location_audio(rng):
    """Draw one location's recording conditions (kept for all of its clips)."""
    bump_hz = float(np.exp(rng.uniform(np.log(150), np.log(8000))))
    return dict(
        tilt=rng.normal(0.0, 0.6),
        bump_hz=bump_hz,
        bump_db=rng.normal(0.0, 3.0),
        level=rng.normal(0.0, 2.0),
        reverb=float(np.exp(rng.normal(0.0, 0.25))),
        coherence=rng.uniform(0.4, 0.8),
    )


def render_audio(scene, place, rng, *, seconds, sample_rate=SAMPLE_RATE):
    """Synthesise one clip of ``scene`` recorded at location ``place``.

    Parameters
    ----------
    scene : str
        A key of :data:`SCENE_AUDIO`.
    place : dict
        From :func:`location_audio`.
    rng : numpy.random.Generator
    seconds : float

    Returns
    -------
    ndarray, shape (n_samples, 2), float64 in [-1, 1)
        ``n_samples = round(seconds * sample_rate)``.
    """
    recipe = SCENE_AUDIO[scene]
    n = int(round(seconds * sample_rate))
    background = _background(recipe, place, rng, n, sample_rate)
    background *= _modulation(*recipe["modulation"], rng, n, sample_rate)[:, None]
    events = _events(recipe["events"], rng, n, sample_rate) * np.sqrt(np.mean(background**2))
    if recipe["wet"] > 0:
        events = _reverberate(
            events, recipe["reverb"] * place["reverb"], recipe["wet"], rng, sample_rate
        )
    signal = background + events
    level_db = recipe["level"] + place["level"] + rng.normal(0.0, 1.0)
    signal *= 10 ** (level_db / 20) / max(np.sqrt(np.mean(signal**2)), 1e-12)
    peak = np.max(np.abs(signal))
    return signal / peak * 0.99 if peak > 0.99 else signal


def _envelope_db(recipe, place, freqs):
    """Background spectral envelope in dB at ``freqs`` (Hz)."""
    octaves = np.log2(np.maximum(freqs, 10.0) / 1000.0)
    db = (recipe["tilt"] + place["tilt"]) * octaves
    bands = recipe["bands"] + [(place["bump_hz"], 0.7, place["bump_db"])]
    for centre, width, gain in bands:
        db += gain * np.exp(-0.5 * (np.log2(np.maximum(freqs, 10.0) / centre) / width) ** 2)
    db -= 24 * np.log2(np.maximum(20.0 / np.maximum(freqs, 1.0), 1.0))  # high-pass at 20 Hz
    db -= 12 * np.log2(np.maximum(freqs / 16000.0, 1.0))  # roll-off above 16 kHz
    return db


def _background(recipe, place, rng, n, sample_rate):
    """Stationary coloured noise, partly correlated between the two channels."""
    common = rng.standard_normal((n, 1))
    own = rng.standard_normal((n, 2))
    c = place["coherence"]
    white = np.sqrt(c) * common + np.sqrt(1 - c) * own
    spectrum = np.fft.rfft(white, axis=0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum *= (10 ** (_envelope_db(recipe, place, freqs) / 20))[:, None]
    return np.fft.irfft(spectrum, n=n, axis=0)


def _modulation(rate, depth, rng, n, sample_rate):
    """A smooth random loudness curve exp(depth * g(t)), g varying at ``rate`` Hz."""
    points = max(int(np.ceil(n / sample_rate * rate)) + 2, 2)
    knots = rng.standard_normal(points)
    curve = np.interp(np.linspace(0, points - 1, n), np.arange(points), knots)
    return np.exp(depth * curve)


def _events(specs, rng, n, sample_rate):
    """Sum of events (stereo), each at unit RMS times its level; background RMS units."""
    out = np.zeros((n, 2))
    for kind, rate, level_db, (f_low, f_high), (d_min, d_max) in specs:
        for _ in range(rng.poisson(rate * n / sample_rate)):
            duration = rng.uniform(d_min, d_max)
            freq = np.exp(rng.uniform(np.log(f_low), np.log(f_high)))
            kernel = _KERNELS[kind](rng, freq, int(duration * sample_rate) + 1, sample_rate)
            kernel /= max(np.sqrt(np.mean(kernel**2)), 1e-12)
            kernel *= 10 ** ((level_db + rng.normal(0.0, 3.0)) / 20)
            start = int(rng.integers(-len(kernel) // 2, n))
            lo, hi = max(start, 0), min(start + len(kernel), n)
            if hi > lo:
                pan = rng.uniform(0.2, 0.8)
                piece = kernel[lo - start : hi - start]
                out[lo:hi] += piece[:, None] * np.sqrt([pan, 1 - pan])
    return out


def _time(n, sample_rate):
    return np.arange(n) / sample_rate


def _click(rng, freq, n, sample_rate):
    t = _time(n, sample_rate)
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0) if freq > 3000 else noise  # brighter clicks
    return noise * np.exp(-t / (n / sample_rate / 4))


def _chirp(rng, freq, n, sample_rate):
    t = _time(n, sample_rate)
    sweep = freq * (1 + rng.uniform(-0.4, 0.4) * t / max(t[-1], 1e-9))
    return np.sin(_phase(sweep, sample_rate)) * np.hanning(n)


def _harmonics(phase, weights):
    """Sum of sin(k * phase) weighted by ``weights[k - 1]``."""
    return sum(w * np.sin(k * phase) for k, w in enumerate(weights, start=1) if w > 1e-3)


def _phase(freq, sample_rate):
    """Instantaneous phase of a frequency track (Hz per sample)."""
    return 2 * np.pi * np.cumsum(freq) / sample_rate


def _tone(rng, freq, n, sample_rate):
    t = _time(n, sample_rate)
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / (t[-1] / 2 + 1e-9))
    return _harmonics(2 * np.pi * freq * t, 1.0 / np.arange(1, 5)) * envelope


def _voice(rng, freq, n, sample_rate):
    t = _time(n, sample_rate)
    f0 = freq * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    harmonic_freqs = freq * np.arange(1, 21)
    formants = np.exp(-0.5 * (np.log2(harmonic_freqs / 500) / 0.5) ** 2)
    formants += 0.6 * np.exp(-0.5 * (np.log2(harmonic_freqs / 1500) / 0.5) ** 2)
    formants[harmonic_freqs > sample_rate / 2.2] = 0
    return _harmonics(_phase(f0, sample_rate), formants) * np.hanning(n)


def _thump(rng, freq, n, sample_rate):
    t = _time(n, sample_rate)
    return np.sin(2 * np.pi * freq * t) * np.exp(-t / (t[-1] / 3 + 1e-9))


def _squeal(rng, freq, n, sample_rate):
    t = _time(n, sample_rate)
    f = freq * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 9) * t))
    return np.sin(_phase(f, sample_rate)) * np.hanning(n)


def _swell(rng, freq, n, sample_rate):
    """A passing vehicle: broadband noise rising and falling over the event."""
    return rng.standard_normal(n) * np.hanning(n) ** 2


_KERNELS = dict(
    click=_click,
    chirp=_chirp,
    tone=_tone,
    voice=_voice,
    thump=_thump,
    squeal=_squeal,
    swell=_swell,
)


def _reverberate(dry, t60, wet, rng, sample_rate):
    """Mix ``dry`` with itself convolved with exponentially decaying noise (decorrelated L/R)."""
    n_ir = max(int(t60 * sample_rate), 16)
    t = _time(n_ir, sample_rate)
    ir = rng.standard_normal((n_ir, 2)) * np.exp(-6.9 * t / max(t60, 1e-3))[:, None]
    ir /= np.sqrt(np.sum(ir**2, axis=0, keepdims=True))
    n_fft = _fast_length(len(dry) + n_ir - 1)
    spectrum = np.fft.rfft(dry, n_fft, axis=0) * np.fft.rfft(ir, n_fft, axis=0)
    tail = np.fft.irfft(spectrum, n_fft, axis=0)[: len(dry)]
    return (1 - wet) * dry + wet * tail


def _fast_length(n):
    """The smallest 2^a 3^b 5^c >= n (a quick FFT size)."""
    best = 1 << max(int(n - 1).bit_length(), 0)
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35 << max(int(math.ceil(n / power35) - 1).bit_length(), 0)
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best
