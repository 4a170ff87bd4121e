"""The feature store: frame-level features of clips in a self-describing zarr v3 group.

>>> store = FeatureStore.open("features.zarr", mode="a")
>>> store.add_clips(clips)                                    # Clip records with durations
>>> store.create_feature("openl3_audio", dim=512, frame_rate=10, params={...})
>>> for block in store.blocks():
...     with store.block_writer("openl3_audio", block) as writer:
...         for clip_id in store.pending("openl3_audio", block=block):
...             writer.write(clip_id, values, timestamps)
>>> train = store.segments(["openl3_audio"], selection=store.select(fold="train"))
>>> train.X(), train.y, train.groups

The on-disk layout is described in :mod:`featurestore.store.layout` and docs/store-format.md; a reader
needs only zarr (or xarray).
"""

import contextlib
import copy
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Self, cast

import numpy as np
import zarr
from numpy.typing import ArrayLike, NDArray
from zarr.abc.store import Store

from featurestore.errors import (
    ProvenanceMismatchError,
    StoreError,
    StoreExistsError,
    StoreFormatError,
    StoreNotFoundError,
)
from featurestore.store import stored_segments
from featurestore.store.chunks import read_span
from featurestore.store.clip_table import (
    ClipTable,
    as_unicode,
    encode_clips,
    merge_new_clips,
    read_clip_table,
    write_clip_rows,
)
from featurestore.store.concurrency.leases import (
    STORE_KEY,
    LocalLeaseFiles,
    StoreLeaseFiles,
    acquire,
    block_key,
    lease_files,
)
from featurestore.store.feature import Feature, create_feature_group
from featurestore.store.layout import (
    COMMITTED,
    COMPRESSIONS,
    DEFAULT_BLOCK_CLIPS,
    DEFAULT_COMPRESSION,
    FAILED,
    FORMAT,
    FORMAT_VERSION,
    PENDING,
    STATUS_NAMES,
    STORAGE_DTYPES,
    check_name,
    definition,
    definition_diff,
    describe_diff,
    n_segments,
    normalise_params,
)
from featurestore.store.opening import (
    MODES,
    StoreAttrs,
    consolidate,
    create_store_group,
    drop_consolidated,
    is_archive,
    open_existing,
    resolve_location,
    zarr_options,
)
from featurestore.store.remote import HttpStore
from featurestore.store.segment_pooling import Segments, join_keys, pool_feature
from featurestore.store.writer import BlockWriter

#: How long adding clips or declaring a feature waits for another process doing the same.
SETUP_WAIT_SECONDS = 120

#: Where :meth:`FeatureStore.open` finds a store: a path, a URL or a zarr store object.
Location = str | os.PathLike[str] | Store
#: (offset, count, status) of a feature's clips, as :meth:`FeatureStore.feature_index` gives it.
Index = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int8]]


@dataclass(frozen=True)
class Block:
    """A fixed run of clips (``start <= position < stop``) written by one writer."""

    index: int
    start: int
    stop: int
    clip_ids: tuple[str, ...]

    def __len__(self) -> int:
        return self.stop - self.start


class Frames(NamedTuple):
    """Frame rows of committed clips, in clip-table order.

    values : ndarray, shape (n_rows, dim), float32
    timestamps : ndarray, shape (n_rows,), float64
    positions : ndarray, shape (n_clips,) -- clip positions, one per committed clip read
    counts : ndarray, shape (n_clips,) -- rows of each of those clips
    """

    values: np.ndarray
    timestamps: np.ndarray
    positions: np.ndarray
    counts: np.ndarray


class FeatureStore:
    """Frame-level features of clips, with their clip table, index and provenance.

    Create or open one with :meth:`open`. Writers of different blocks may run at once in
    different processes (each opens the store with mode ``r+``); a second writer of the same
    block is refused (:class:`~featurestore.errors.BlockLeasedError`). Adding clips, declaring
    features and setting attributes take turns between processes; they must not run while
    writers of the last block run.
    """

    def __init__(
        self,
        group: zarr.Group,
        *,
        label: str,
        mode: str,
        owned_store: Store | None = None,
        clip_table: bool = True,
    ) -> None:
        self._group = group
        self.label = label
        self.mode = mode
        self._owned_store = owned_store
        meta: Any = group.attrs.get("avscene")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreFormatError(f"{label} is a zarr group but not an avscene feature store")
        version = meta.get("format_version")
        if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
            raise StoreFormatError(
                f"{label} has store format {version!r}; this avscene reads "
                f"formats 1 to {FORMAT_VERSION}"
            )
        self._meta: dict[str, Any] = dict(meta)
        counts: list[Any] = [meta.get(key) for key in ("block_clips", "n_clips")]
        if not all(type(value) is int for value in counts) or counts[0] < 1 or counts[1] < 0:
            raise StoreFormatError(
                f"{label}: block_clips {counts[0]!r} and n_clips "
                f"{counts[1]!r} must be a positive and a non-negative integer"
            )
        self.block_clips = int(meta["block_clips"])
        #: True for a store (or archive) that holds the stored segments but no frames.
        self.segments_only = meta.get("segments_only") is True
        self._clip_table = read_clip_table(group, int(meta["n_clips"])) if clip_table else None
        self._features: dict[str, Feature] = {}
        self._leases = lease_files(group)

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        where: Location,
        mode: str = "r",
        *,
        storage_options: dict[str, Any] | None = None,
        block_clips: int = DEFAULT_BLOCK_CLIPS,
        clip_table: bool = True,
    ) -> Self:
        """Open or create a store.

        Parameters
        ----------
        where : str, os.PathLike or zarr Store
            A local directory (also as a ``file://`` URL), an fsspec URL (``memory://x``,
            ``s3://bucket/x``) or a zarr store object (e.g. ``zarr.storage.MemoryStore()``).
        mode : {"r", "r+", "a", "w", "w-"}
            zarr's meaning: read only; read/write, must exist; read/write, create if needed;
            create, replacing anything there; create, failing if something is there.
        storage_options : dict, optional
            Passed to fsspec for URLs.
        block_clips : int
            Clips per block, used only when the store is created.
        clip_table : bool
            False: leave the clip table unread until it is first used (``avscene verify``
            reads it itself, and reports what it cannot read).

        Raises
        ------
        StoreNotFoundError
            ``r``/``r+`` and no store at ``where``.
        StoreExistsError
            ``w-`` and something at ``where`` already.
        StoreFormatError
            ``where`` holds a zarr group that is not an avscene store.
        """
        if mode not in MODES:
            raise StoreFormatError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        target, label = resolve_location(where, storage_options=storage_options)
        if is_archive(target) and mode != "r":
            raise StoreError(
                f"{label} is a zip archive, which is read-only (mode 'r'); "
                f"avscene unpack ARCHIVE --out STORE makes a writable store"
            )
        if isinstance(target, HttpStore) and mode != "r":
            raise StoreError(f"{label} is read over HTTP, which is read-only (mode 'r')")
        options = zarr_options(target, storage_options, label)
        group = open_existing(target, options, label, writable=mode != "r")
        if mode in ("r", "r+") and group is None:
            raise StoreNotFoundError(f"no feature store at {label}")
        if mode == "w-" and group is not None:
            raise StoreExistsError(f"{label} exists already (mode 'w-')")
        if mode == "w" or group is None:
            group = create_store_group(target, options, label, mode=mode, block_clips=block_clips)
        owned = group.store if not hasattr(where, "list_prefix") else None
        return cls(group, label=label, mode=mode, owned_store=owned, clip_table=clip_table)

    def close(self) -> None:
        """Release the zarr store if this object opened it (stores passed in are left open)."""
        if self._owned_store is not None:
            self._owned_store.close()
            self._owned_store = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False

    def __repr__(self) -> str:
        return (
            f"<FeatureStore {self.label} mode={self.mode!r} clips={self.n_clips} "
            f"features={list(self.features)}>"
        )

    @property
    def n_clips(self) -> int:
        """The number of clips (the root attribute ``n_clips``; the clip table is not read)."""
        return int(self._meta["n_clips"])

    @property
    def read_only(self) -> bool:
        """True when opened with mode ``r``."""
        return self.mode == "r"

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.label} is open read-only (mode 'r')")
        if self.segments_only:
            raise StoreError(
                f"{self.label} holds stored segments only (frames omitted); it "
                f"cannot be extended or rewritten"
            )

    @contextlib.contextmanager
    def _setup(self) -> Iterator[None]:
        """Hold the store's setup lease (one process at a time appends clips, declares features
        or sets attributes) and re-read what another process may have changed meanwhile."""
        what = f"setup of {self.label} (adding clips, declaring features, setting attributes)"
        with acquire(self._leases, STORE_KEY, what, wait=SETUP_WAIT_SECONDS):
            self._refresh()
            yield
            consolidate(self._group)  # readers of the consolidated metadata see the change

    def _refresh(self) -> None:
        """Re-read the root attributes and, if another process appended clips, the clip table."""
        group = zarr.open_group(
            self._group.store,
            path=self._group.path,
            mode="r+",
            zarr_format=3,
            use_consolidated=False,
        )
        meta = dict(cast(dict[str, Any], group.attrs["avscene"]))
        if self._clip_table is None or int(meta["n_clips"]) != len(self._clip_table):
            self._clip_table = None  # read again, from the new group, when used
            self._features = {}
        self._group, self._meta = group, meta

    # -- clips ------------------------------------------------------------------------------
    @property
    def clips(self) -> ClipTable:
        """The :class:`~featurestore.store.clip_table.ClipTable` (columnar arrays in position order)."""
        return self._clips

    @property
    def _clips(self) -> ClipTable:
        if self._clip_table is None:  # opened with clip_table=False
            self._clip_table = read_clip_table(self._group, self.n_clips)
        return self._clip_table

    @_clips.setter
    def _clips(self, table: ClipTable) -> None:
        self._clip_table = table

    @property
    def attrs(self) -> StoreAttrs:
        """Store-level attributes (dict-like; e.g. ``manifest_sha256``, ``dataset_root``)."""
        return StoreAttrs(
            self._group, check_writable=self._require_writable, changing=self._changing_root
        )

    @contextlib.contextmanager
    def _changing_root(self) -> Iterator[zarr.Group]:
        """The root group, re-read under the setup lease, for a change of its attributes."""
        with self._setup():
            yield self._group

    def add_clips(
        self, clips: Iterable[Any], *, sources: dict[str, dict[str, Any]] | None = None
    ) -> int:
        """Append clips to the clip table and extend every feature's layout.

        Parameters
        ----------
        clips : iterable of Clip
            Each with ``duration`` set. Clips already stored with identical fields are skipped.
        sources : dict of str -> dict, optional
            Per clip id: ``audio_bytes``, ``video_bytes``, ``audio_sha256``, ``video_sha256``
            of the source media (recorded for new clips).

        Returns
        -------
        int
            Number of clips added.

        Raises
        ------
        StoreFormatError
            A clip has no duration or conflicts with the stored clip of the same id.
        """
        self._require_writable()
        encoded = encode_clips(clips, sources)
        with self._setup():
            return self._append_clips(encoded)

    def _append_clips(self, encoded: dict[str, NDArray[Any]]) -> int:
        new = merge_new_clips(self._clips, encoded)
        added = len(new["clip_id"])
        if not added:
            return 0
        start = len(self._clips)
        write_clip_rows(self._group, new, start)
        columns = {name: np.concatenate([self._clips.columns[name], new[name]]) for name in new}
        for name in self.features:
            self._feature(name).extend(start + added, columns["duration"])
        self._meta["n_clips"] = start + added  # the commit point of add_clips
        self._group.attrs["avscene"] = self._meta
        self._clips = ClipTable(columns)
        return added

    def blocks(self) -> list[Block]:
        """The fixed partition of the clip table into blocks (``block_clips`` clips each).

        Returns
        -------
        list of Block
            Disjoint blocks never share a chunk of any array.
        """
        return [self._block(index) for index in range(-(-len(self._clips) // self.block_clips))]

    def _block(self, index: int) -> Block:
        n_blocks = -(-len(self._clips) // self.block_clips)
        if not 0 <= index < n_blocks:
            raise StoreFormatError(f"{self.label} has no block {index} ({n_blocks} blocks)")
        start = index * self.block_clips
        stop = min(start + self.block_clips, len(self._clips))
        return Block(
            index=index,
            start=start,
            stop=stop,
            clip_ids=tuple(self._clips.clip_id[start:stop].tolist()),
        )

    def select(
        self,
        *,
        scene: str | Sequence[str] | None = None,
        city: str | Sequence[str] | None = None,
        location: str | Sequence[str] | None = None,
        fold: str | Sequence[str] | None = None,
        clips: str | Sequence[str] | None = None,
    ) -> NDArray[np.int64]:
        """Positions of the clips matching every given criterion.

        Each argument is a string or a list of strings (any of them matches); ``fold`` matches
        clips that are in that fold among others.

        Returns
        -------
        ndarray of int64, shape (n_selected,), ascending
        """
        table = self._clips
        mask = np.ones(len(table), bool)
        for column, wanted in (("scene", scene), ("city", city), ("location", location)):
            if wanted is not None:
                mask &= np.isin(table.columns[column], as_unicode(_as_list(wanted)))
        if fold is not None:
            mask &= table.fold_mask(_as_list(fold))
        if clips is not None:
            chosen = np.zeros(len(table), bool)
            chosen[table.positions(_as_list(clips))] = True
            mask &= chosen
        return np.flatnonzero(mask).astype(np.int64)

    # -- features ---------------------------------------------------------------------------
    @property
    def features(self) -> tuple[str, ...]:
        """Names of the stored features, sorted."""
        return tuple(sorted(self._features_group().group_keys()))

    def _features_group(self) -> zarr.Group:
        return cast(zarr.Group, self._group["features"])

    def _feature(self, name: str) -> Feature:
        if name not in self._features:
            if name not in self.features:
                raise StoreFormatError(
                    f"{self.label} has no feature {name!r} "
                    f"(it has {', '.join(self.features) or 'none'})"
                )
            group = cast(zarr.Group, self._features_group()[name])
            self._features[name] = Feature(
                group, block_clips=self.block_clips, frames=not self.segments_only
            )
        return self._features[name]

    def create_feature(
        self,
        name: str,
        *,
        dim: int,
        frame_rate: float,
        params: dict[str, Any],
        storage_dtype: str = "float32",
        chunk_mib: float = 4,
        compression: str = DEFAULT_COMPRESSION,
    ) -> None:
        """Declare a feature, or check that an existing one has the same definition.

        Parameters
        ----------
        name : str
        dim : int
            Values per frame.
        frame_rate : float
            Frames per second, used to reserve ``ceil(duration * frame_rate) + 2`` rows per clip.
        params : dict
            JSON-able extractor parameters, including weight-file checksums.
        storage_dtype : {"float32", "float16"}
            float16 halves the bytes; reads always return float32.
        chunk_mib : float
            Approximate size of one chunk of values.
        compression : {"zstd", "lz4", "none"}
            Byte-shuffled blosc codec (plus a crc32c checksum in every case).

        Raises
        ------
        ProvenanceMismatchError
            The feature exists with different params, dim, frame_rate or storage dtype.
        """
        check_name(name)
        if storage_dtype not in STORAGE_DTYPES:
            raise StoreFormatError(
                f"storage_dtype must be one of {STORAGE_DTYPES}, not {storage_dtype!r}"
            )
        if compression not in COMPRESSIONS:
            raise StoreFormatError(
                f"compression must be one of {COMPRESSIONS}, not {compression!r}"
            )
        if (
            int(dim) != dim
            or dim <= 0
            or not np.isfinite(frame_rate)
            or frame_rate <= 0
            or not chunk_mib > 0
        ):
            raise StoreFormatError(
                f"feature {name!r}: dim, frame_rate and chunk_mib must be "
                f"positive (got {dim!r}, {frame_rate!r}, {chunk_mib!r})"
            )
        wanted = definition(
            dim=dim,
            frame_rate=frame_rate,
            storage_dtype=storage_dtype,
            params=normalise_params(params, name=name),
        )
        if self.read_only:
            return self._same_definition(name, wanted)
        with self._setup():  # another process may be declaring it right now
            if name in self.features:
                return self._same_definition(name, wanted)
            self._features[name] = create_feature_group(
                self._features_group(),
                name,
                wanted,
                compression=compression,
                chunk_mib=chunk_mib,
                block_clips=self.block_clips,
                n_clips=len(self._clips),
                durations=self._clips.duration,
            )

    def _same_definition(self, name: str, wanted: dict[str, Any]) -> None:
        """Refuse a redeclaration of ``name`` with another definition (or an unknown name)."""
        if name not in self.features:
            self._require_writable()
        differences = definition_diff(self._feature(name).definition(), wanted)
        if differences:
            raise ProvenanceMismatchError(
                f"feature {name!r} in {self.label} was made with a different definition: "
                f"{describe_diff(differences)}; use a new feature name or a new store"
            )

    def feature_params(self, name: str) -> dict[str, Any]:
        """The extractor parameters a feature was made with (a copy)."""
        return copy.deepcopy(self._feature(name).attrs["params"])

    def feature_attrs(self, name: str) -> dict[str, Any]:
        """All attributes of a feature (definition, layout, provenance), as a copy."""
        return copy.deepcopy(self._feature(name).attrs)

    def feature_fingerprint(self, name: str) -> str:
        """sha256 of the feature's definition (params, dim, storage dtype)."""
        return self._feature(name).attrs["fingerprint"]

    # -- writing ----------------------------------------------------------------------------
    def block_writer(
        self, name: str, block: Block | int, *, commit_seconds: float = 1.0
    ) -> BlockWriter:
        """A :class:`~featurestore.store.writer.BlockWriter` for ``block`` (Block or index).

        The writer holds the block's lease until it closes; the lease of a writer that died
        (this machine) or stopped renewing it (another machine, see
        :data:`~featurestore.store.concurrency.leases.LEASE_EXPIRY_SECONDS`) is taken over.

        Parameters
        ----------
        commit_seconds : float
            Least time between two index updates while writing (0: after every chunk flush);
            the index is always updated when the writer closes.

        Raises
        ------
        BlockLeasedError
            Another live writer holds the block (the message names it).
        """
        self._require_writable()
        feature = self._feature(name)
        index = block.index if isinstance(block, Block) else int(block)
        block = self._block(index)
        starts, stops = feature.regions(self._clips.duration)
        lease = acquire(
            self._leases, block_key(name, index), f"features/{name} block {index} of {self.label}"
        )
        try:
            return BlockWriter(
                feature,
                block,
                durations=self._clips.duration,
                region=(starts[index], stops[index]),
                lease=lease,
                commit_seconds=commit_seconds,
            )
        except BaseException:
            lease.release()
            raise

    def _index(self, name: str, positions: ArrayLike | None = None) -> Index:
        """Checked offset, count, status of a feature (see :meth:`Feature.checked_index`)."""
        return self._feature(name).checked_index(self._clips, positions)

    def status(self, name: str) -> NDArray[np.int8]:
        """Per-clip status of a feature: 0 pending, 1 committed, 2 failed, 3 not applicable.

        Returns
        -------
        ndarray of int8, shape (n_clips,)
        """
        return self._index(name)[2]

    def pending(self, name: str, *, block: Block | int | None = None) -> list[str]:
        """Ids of clips neither committed nor failed for ``name`` (optionally in one block)."""
        if block is None:
            start, status = 0, self.status(name)
        else:  # one block: read its index chunk only
            block = self._block(block.index if isinstance(block, Block) else int(block))
            start = block.start
            status = read_span(self._feature(name).status, block.start, block.stop)
        positions = start + np.flatnonzero(status == PENDING)
        return [str(clip_id) for clip_id in self._clips.clip_id[positions]]

    def failures(self, name: str | None = None) -> list[tuple[str, str, str]]:
        """Recorded failures, as a list of (feature, clip_id, reason)."""
        found = []
        for feature_name in self.features if name is None else [name]:
            feature = self._feature(feature_name)
            failed = np.flatnonzero(self._index(feature_name)[2] == FAILED)
            if failed.size:
                reasons = read_span(feature.reason)
                found += [
                    (feature_name, str(self._clips.clip_id[p]), str(reasons[p])) for p in failed
                ]
        return found

    # -- reading ----------------------------------------------------------------------------
    def frames(self, name: str, clip_id: str) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        """Frames of one clip.

        Returns
        -------
        values : ndarray, shape (n_frames, dim), float32
        timestamps : ndarray, shape (n_frames,), float64
        """
        position = self._clips.positions([clip_id])
        offset, count, status = self._index(name, position)
        if status[0] != COMMITTED:
            raise StoreError(
                f"clip {clip_id!r} has no {name} frames in {self.label} "
                f"({STATUS_NAMES.get(int(status[0]), status[0])})"
            )
        return self._feature(name).rows(offset, count)

    def read(self, name: str, *, selection: ArrayLike | None = None) -> Frames:
        """All frame rows of the committed clips of a selection.

        Parameters
        ----------
        selection : array of int, optional
            Clip positions (from :meth:`select`); default all clips.

        Returns
        -------
        Frames
            ``values`` (n_rows, dim) float32, ``timestamps`` (n_rows,), ``positions`` and
            ``counts`` (n_clips,) of the clips read; failed and pending clips are left out.
        """
        feature = self._feature(name)
        positions = self._positions(selection)
        offset, count, status = self._index(name, positions)
        keep = status == COMMITTED
        values, timestamps = feature.rows(offset[keep], count[keep])
        return Frames(values, timestamps, positions[keep], count[keep])

    def segments(
        self,
        names: str | Sequence[str],
        *,
        selection: ArrayLike | None = None,
        pooling: str = "mean",
    ) -> Segments:
        """Per-second segments of one or more features, joined on (clip, second).

        Parameters
        ----------
        names : str or list of str
        selection : array of int, optional
            Clip positions (from :meth:`select`); default all clips.
        pooling : {"mean", "max", "meanstd", "center", "none"}
            How the frames of a segment are combined (see :class:`Segments`).

        Returns
        -------
        Segments
            Only segments for which every feature has frames; clips pending or failed for any
            feature contribute nothing.
        """
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise StoreFormatError("segments() needs at least one feature name")
        positions = self._positions(selection)
        durations = self._clips.duration
        stride = int(n_segments(durations).max()) + 1 if len(durations) else 1
        pooled = {name: self._pooled(name, positions, stride, pooling) for name in names}
        keys, where = join_keys({name: pooled[name][0] for name in names})
        clip = keys // stride
        columns = self._clips.columns
        return Segments(
            features={name: pooled[name][1][where[name]] for name in names},
            counts={name: pooled[name][2][where[name]] for name in names},
            clip_id=columns["clip_id"][clip],
            second=keys - clip * stride,
            scene=columns["scene"][clip],
            city=columns["city"][clip],
            location=columns["location"][clip],
            folds=columns["folds"][clip],
            position=clip,
            pooling=pooling,
            names=tuple(names),
        )

    def _pooled(
        self, name: str, positions: NDArray[np.int64], stride: int, pooling: str
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """(keys, pooled, counts) of one feature: from its stored segments when they were made
        from the current frames, else pooled from the frames."""
        feature = self._feature(name)
        index = self._index(name)
        group = stored_segments.open_group(self._group, name, pooling)
        stored = stored_segments.read_segments(
            group, feature, self._clips, index, positions, stride, pooling
        )
        if stored is not None:
            return stored
        if not feature.has_frames:
            raise StoreFormatError(
                f"{self.label} holds segments only, and has no up-to-date {pooling} segments "
                f"of {name!r} (it has {self._stored_names() or 'none'})"
            )
        subset = tuple(part[positions] for part in index)
        return pool_feature(feature, subset, positions, self._clips.duration, stride, pooling)

    def _stored_names(self) -> str:
        return ", ".join(
            f"{name} {pooling}" for name, pooling in stored_segments.stored_groups(self._group)
        )

    def stored_segments(self, *, indexes: dict[str, Index] | None = None) -> list[dict[str, Any]]:
        """The stored segment groups and whether each was made from the current frames.

        Parameters
        ----------
        indexes : dict, optional
            {feature name: (offset, count, status)} of indexes read already (from
            :meth:`feature_index`); they are used as they are, and those read here are added
            to it, so that a caller reads each feature's index once.

        Returns
        -------
        list of dict
            ``feature``, ``pooling``, ``segments``, ``dim``, ``fresh``, ``created``, sorted.
        """
        indexes = {} if indexes is None else indexes
        found = []
        for (name, pooling), group in stored_segments.stored_groups(self._group).items():
            if name in self.features and name not in indexes:
                indexes[name] = self._index(name)
            fresh = name in self.features and stored_segments.is_fresh(
                group, self._feature(name), self._clips, indexes[name]
            )
            found.append(
                {
                    "feature": name,
                    "pooling": pooling,
                    "fresh": fresh,
                    "segments": group.attrs.get("n_segments"),
                    "dim": group.attrs.get("dim"),
                    "created": group.attrs.get("created"),
                }
            )
        return found

    def write_segments(
        self,
        names: str | Sequence[str] | None = None,
        *,
        poolings: Sequence[str] = ("mean",),
        overwrite: bool = False,
    ) -> list[dict[str, Any]]:
        """Store the pooled 1-s segments of features, for later reads of the same pooling.

        :meth:`segments` reads a stored copy instead of pooling the frames as long as the frames
        have not changed since (their fingerprint is recorded); a stale copy is never used.

        Parameters
        ----------
        names : list of str, optional
            Features (default: all).
        poolings : list of {"mean", "max", "meanstd", "center"}
        overwrite : bool
            Rewrite copies that are up to date too (otherwise they are left as they are).

        Returns
        -------
        list of dict
            Per (feature, pooling): ``feature``, ``pooling``, ``segments``, ``dim``,
            ``frames_fingerprint`` and ``written`` (False: it was up to date).
        """
        self._require_writable()
        names = (
            list(self.features)
            if names is None
            else [names]
            if isinstance(names, str)
            else list(names)
        )
        unknown = [p for p in poolings if p not in stored_segments.STORED_POOLINGS]
        if unknown:
            raise StoreFormatError(
                f"pooling {unknown[0]!r} cannot be stored; choose from "
                f"{', '.join(stored_segments.STORED_POOLINGS)}"
            )
        done = []
        with self._setup():
            for name in names:
                feature, index = self._feature(name), self._index(name)
                for pooling in poolings:
                    group = stored_segments.open_group(self._group, name, pooling)
                    if (
                        group is not None
                        and not overwrite
                        and stored_segments.is_fresh(group, feature, self._clips, index)
                    ):
                        done.append(
                            {
                                "feature": name,
                                "pooling": pooling,
                                "written": False,
                                "segments": group.attrs["n_segments"],
                                "dim": group.attrs["dim"],
                                "frames_fingerprint": group.attrs["frames_fingerprint"],
                            }
                        )
                        continue
                    drop_consolidated(self._group)  # no reader trusts the old copy's attrs
                    done.append(
                        {
                            **stored_segments.write_segments(
                                self._group, feature, self._clips, index, pooling
                            ),
                            "written": True,
                        }
                    )
        return done

    def _positions(self, selection: ArrayLike | None) -> NDArray[np.int64]:
        if selection is None:
            return np.arange(len(self._clips), dtype=np.int64)
        positions = np.asarray(selection)
        if positions.dtype == bool:
            positions = np.flatnonzero(positions)
        positions = positions.astype(np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self._clips)):
            raise StoreFormatError(f"selection holds positions outside 0..{len(self._clips) - 1}")
        return np.unique(positions)

    def record_sizes(self) -> None:
        """Measure the stored bytes of every array and record them with the consolidated
        metadata, where ``info`` over HTTP reads them (:mod:`featurestore.store.sizes`).

        Changes of the store's structure record them anyway; block writers do not, so
        extraction runs call this when they end.
        """
        self._require_writable()
        with self._setup():  # consolidates, measuring the sizes
            pass

    # -- the zarr objects underneath -------------------------------------------------------
    # For the store's own modules (integrity, interchange) and readers that need zarr itself;
    # every change goes through the methods above, which keep leases and metadata right.

    @property
    def zarr_group(self) -> zarr.Group:
        """The store's root zarr group, to read from (change the store through its methods).

        The store opens its root group again when it re-reads its metadata (adding clips,
        declaring features, setting attributes), so ask for it again rather than keeping it.
        """
        return self._group

    def zarr_location(self) -> tuple[Store, str]:
        """Where the store lives in zarr's terms.

        Returns
        -------
        store : zarr.abc.store.Store
            The zarr store object holding the root group.
        path : str
            The root group's path in it (``""`` when the store is the whole zarr store); keys
            of the store's files are ``f"{path}/{key}"``, or ``key`` for an empty path.
        """
        return self._group.store, self._group.path

    def format_record(self) -> dict[str, Any]:
        """A copy of the root attribute ``avscene`` as last read: format, format_version,
        block_clips, n_clips, created, versions and the recorded sizes."""
        return copy.deepcopy(self._meta)

    def feature(self, name: str) -> Feature:
        """The :class:`~featurestore.store.feature.Feature` (arrays, attributes, layout) of a
        stored feature.

        Raises
        ------
        StoreFormatError
            The store has no such feature, or avscene refuses its attributes or arrays.
        """
        return self._feature(name)

    def feature_group(self, name: str) -> zarr.Group:
        """The zarr group ``features/<name>``, opened without any check (for reading what a
        feature that :meth:`feature` refuses still holds).

        Raises
        ------
        KeyError
            No such group.
        """
        return cast(zarr.Group, self._features_group()[name])

    def feature_index(self, name: str, *, positions: ArrayLike | None = None) -> Index:
        """The checked index of a feature (see
        :meth:`~featurestore.store.feature.Feature.checked_index`).

        Parameters
        ----------
        name : str
        positions : array of int, optional
            Clip positions; default all clips.

        Returns
        -------
        offset, count : ndarray of int64, shape (n,)
        status : ndarray of int8, shape (n,)
        """
        return self._index(name, positions)

    @property
    def leases(self) -> LocalLeaseFiles | StoreLeaseFiles:
        """The lease files of the store's writers (under ``leases/``; see
        :mod:`~featurestore.store.concurrency.leases`)."""
        return self._leases

    # -- checks and interchange -------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Summary of clips, features, layout, sizes on disk and provenance (a JSON-able dict)."""
        from featurestore.store.integrity import store_info

        return store_info(self)

    def verify(self) -> list[str]:
        """Re-read every chunk and check the index; return the problems found (one per line).

        Leases and leftover temporary files are not problems (see :meth:`repair`).
        """
        from featurestore.store.integrity import verify_store

        return verify_store(self)

    def temporary_files(self) -> list[str]:
        """Keys of leftover temporary files (names ending in ``.partial``), sorted."""
        from featurestore.store.integrity import temporary_files

        return temporary_files(self)

    def repair(self) -> list[str]:
        """Remove leftover temporary files and the leases of writers that are gone.

        Returns
        -------
        list of str
            One line per file removed.

        Raises
        ------
        StoreError
            The store is open read-only, or a live writer holds a lease.
        """
        from featurestore.store.integrity import repair_store

        self._require_writable()
        return repair_store(self)


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
