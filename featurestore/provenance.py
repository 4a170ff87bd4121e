"""Provenance helpers: checksums, package versions and timestamps recorded with every array."""

import datetime
import hashlib
import json
import platform
from importlib import metadata

#: Distributions whose versions are recorded when installed (import-free lookup).
TRACKED_PACKAGES = (
    "avscene",
    "numpy",
    "zarr",
    "numcodecs",
    "h5py",
    "torch",
    "av",
    "soundfile",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "joblib",
    "torchvision",
    "open_clip_torch",
)


def sha256_file(path, *, block_size=1 << 20):
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj):
    """Return the hex sha256 of ``obj`` serialised as canonical JSON (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions():
    """Return ``{name: version}`` of the tracked packages that are installed, plus Python."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now():
    """Return the current UTC time as an ISO 8601 string with seconds."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
