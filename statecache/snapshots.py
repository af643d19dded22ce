"""Whole ProjectStates in the store: one manifest per state, one blob per ModelState.

A manifest lists (model key, blob hash) in the order of `ProjectState.models` (the order models
are rendered in, which decides for instance the order in which content types are created),
each model key written as its "app_label.model_name" name (neither part holds a dot). It is
either complete or a delta on a base manifest (changed and added entries, removed keys); a chain
of deltas is cut by a complete manifest every MAX_DEPTH links, as git limits its delta chains.
States that share models share their blobs, so thousands of snapshots cost little more than the
models that really changed.
"""

from __future__ import annotations

import atexit
import copy
import logging
import weakref
from dataclasses import asdict, dataclass

import msgpack
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import Field

from . import codec, conf, origins
from .operations import ModelKey
from .store import BLOB, MANIFEST, Store, object_hash

logger = logging.getLogger("statecache")

MAX_DEPTH = 32
# Decoded models kept per process (Snapshots._decoded): far more than the models of a project.
MAX_DECODED = 20_000
Entries = dict[ModelKey, bytes]  # (app_label, model_name) -> blob hash, in model order


def model_key(state: ModelState) -> ModelKey:
    return state.app_label, state.name_lower


def name_of(key: ModelKey) -> str:
    """A model key as manifests and messages write it: "app_label.model_name"."""
    return f"{key[0]}.{key[1]}"


def key_of(name: str) -> ModelKey:
    """The model key a manifest names (ValueError if it names none)."""
    app_label, dot, model_name = name.partition(".")
    if not (app_label and dot and model_name) or "." in model_name:
        raise ValueError(f"not a model name: {name!r}")
    return app_label, model_name


@dataclass
class Stats:
    """What this process did; added to the cache directory's counters (store.add_stats)."""

    hits: int = 0
    misses: int = 0  # a key the cache did not have (the state was replayed)
    keyless: int = 0  # a state replayed with no key at all (a migration with no fingerprint)
    written: int = 0  # states stored
    uncacheable: int = 0  # states not stored: a model in them cannot be encoded exactly
    unwritten: int = 0  # states not stored: the directory refused the write
    blobs_written: int = 0


@dataclass
class Failure:
    """Why the last `save` stored nothing."""

    kind: str  # "uncacheable" or "unwritten"
    model: str | None  # the name of an uncacheable model
    reason: str


@dataclass
class Snapshot:
    """What a write produced: the manifest and its resolved entries (to base the next delta on)."""

    digest: bytes
    entries: Entries
    depth: int


class Snapshots:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.stats = Stats()
        self._flushed = Stats()
        self._manifests: dict[bytes, tuple[Entries, int]] = {}
        # blob hash -> its decoded ModelState, for blobs that take nothing by origin (_decode).
        self._decoded: dict[bytes, ModelState] = {}
        self.failure: Failure | None = None
        # Every model that could not be encoded, with the first reason seen (for reports).
        self.uncacheable_models: dict[str, str] = {}
        _live.add(self)

    # -- counters ------------------------------------------------------------------------------

    def unflushed(self) -> dict[str, int]:
        now, before = asdict(self.stats), asdict(self._flushed)
        return {name: now[name] - before[name] for name in now}

    def flush_stats(self) -> None:
        """Add this process's counters since the last flush to the cache's persistent ones."""
        deltas = self.unflushed()
        if any(deltas.values()) and self.store.add_stats(deltas):
            self._flushed = Stats(**asdict(self.stats))

    # -- manifests -----------------------------------------------------------------------------

    def read_manifest(self, digest: bytes) -> tuple[Entries, int] | None:
        """The entries of a manifest (deltas applied) and its depth in its delta chain."""
        cached = self._manifests.get(digest)
        if cached is not None:
            return cached
        chain: list[tuple[list, list]] = []
        depth = None
        current: bytes | None = digest
        entries: Entries = {}
        while current is not None:
            known = self._manifests.get(current)
            if known is not None:
                entries = dict(known[0])
                break
            payload = self.store.get_object(current, MANIFEST)
            if payload is None:
                return None
            try:
                base, link_depth, updates, removed = msgpack.unpackb(payload, raw=False)
                updates = [(key_of(name), blob) for name, blob in updates]
                removed = [key_of(name) for name in removed]
            except Exception:
                self.store.warn_once(
                    "manifest", "statecache: unreadable manifest %s", current.hex()
                )
                return None
            if depth is None:
                depth = link_depth
            chain.append((updates, removed))
            current = base
            if len(chain) > MAX_DEPTH + 1:
                self.store.warn_once(
                    "chain", "statecache: manifest chain too long at %s", digest.hex()
                )
                return None
        for updates, removed in reversed(chain):
            for key in removed:
                entries.pop(key, None)
            for key, blob in updates:
                entries[key] = blob
        self._manifests[digest] = (entries, depth or 0)
        return self._manifests[digest]

    def manifest_chain(self, digest: bytes) -> list[bytes] | None:
        """The manifests a state needs, its own first then its delta bases (None if broken)."""
        chain = []
        current: bytes | None = digest
        while current is not None:
            payload = self.store.get_object(current, MANIFEST)
            if payload is None or len(chain) > MAX_DEPTH + 1:
                return None
            chain.append(current)
            try:
                current = msgpack.unpackb(payload, raw=False)[0]
            except Exception:
                return None
        return chain

    def write_manifest(self, entries: Entries, base: Snapshot | None) -> Snapshot | None:
        # A delta needs its base on disk: a prune may have removed it since it was read.
        if base is not None and base.depth < MAX_DEPTH and self.store.has_object(base.digest):
            survivors = [key for key in base.entries if key in entries]
            added = [key for key in entries if key not in base.entries]
            if list(entries) == survivors + added:
                updates = [
                    [name_of(key), blob]
                    for key, blob in entries.items()
                    if base.entries.get(key) != blob
                ]
                removed = sorted(name_of(key) for key in set(base.entries) - set(entries))
                payload = msgpack.packb(
                    [base.digest, base.depth + 1, updates, removed], use_bin_type=True
                )
                depth = base.depth + 1
                return self._put_manifest(payload, entries, depth)
        payload = msgpack.packb(
            [None, 0, [[name_of(k), b] for k, b in entries.items()], []], use_bin_type=True
        )
        return self._put_manifest(payload, entries, 0)

    def _put_manifest(self, payload: bytes, entries: Entries, depth: int) -> Snapshot | None:
        digest, _ = self.store.put_object(MANIFEST, payload)
        if digest is None:
            return None
        self._manifests[digest] = (dict(entries), depth)
        return Snapshot(digest, dict(entries), depth)

    # -- blobs ---------------------------------------------------------------------------------

    def put_model(self, state: ModelState, index: origins.Index | None = None) -> bytes | None:
        """Store one ModelState; None if it cannot be encoded exactly (or written), with
        `self.failure` saying which."""
        try:
            data = codec.encode_model_state(state, check=False, index=index)
            digest = object_hash(BLOB + data)
            if self.store.has_object(digest):
                return digest
            # New bytes: prove the exact round trip before anyone can read them.
            codec.verify(state, data, index=index)
        except codec.Uncacheable as exc:
            self._uncacheable(state, exc)
            return None
        stored, new = self.store.put_object(BLOB, data)
        self.stats.blobs_written += new
        return stored  # None: not written (save() records that as the failure)

    def _uncacheable(self, state: ModelState, exc: Exception) -> None:
        name = name_of(model_key(state))
        self.failure = Failure("uncacheable", name, str(exc))
        if name not in self.uncacheable_models:
            self.uncacheable_models[name] = str(exc)
            logger.info("statecache: %s is uncacheable: %s", name, exc)

    # -- whole states --------------------------------------------------------------------------

    def save(
        self,
        key: bytes,
        state: ProjectState,
        *,
        cost: float = 0.0,
        base: Snapshot | None = None,
        changed: set[ModelKey] | None = None,
        index: origins.Index | None = None,
    ) -> Snapshot | None:
        """Store `state` under `key`. With `base` and `changed`, only the models named in
        `changed` (or absent from the base) are encoded again. None: nothing stored, and
        `self.failure` says why (counted as uncacheable or unwritten)."""
        self.failure = None
        # One write sequence under the store's shared lock: a clear or prune cannot remove the
        # blobs and base manifest found here before the ref that needs them is written.
        with self.store.writing() as ok:
            snapshot = self._save(key, state, cost, base, changed, index) if ok else None
        if snapshot is None:
            if self.failure is None:
                self.failure = Failure("unwritten", None, f"cannot write to {self.store.root}")
            if self.failure.kind == "uncacheable":
                self.stats.uncacheable += 1
            else:
                self.stats.unwritten += 1
        return snapshot

    def _save(
        self,
        key: bytes,
        state: ProjectState,
        cost: float,
        base: Snapshot | None,
        changed: set[ModelKey] | None,
        index: origins.Index | None,
    ) -> Snapshot | None:
        entries: Entries = {}
        for model, model_state in state.models.items():
            blob = None
            if base is not None and changed is not None and model not in changed:
                blob = base.entries.get(model)
            if blob is None:
                blob = self.put_model(model_state, index)
                if blob is None:
                    return None
            entries[model] = blob
        snapshot = self.write_manifest(entries, base)
        if snapshot is None:
            return None
        held, wrote = self.store.put_ref(key, snapshot.digest, cost)
        self.stats.written += wrote
        return snapshot if held else None  # None: not stored (the ref could not be written)

    def load(
        self, key: bytes, real_apps: set[str], index: origins.Index | None = None
    ) -> tuple[ProjectState, float] | None:
        """The state stored under `key` and what it cost to compute, or None. Values stored
        by origin are taken from `index`, the leaves of the loaded migrations."""
        ref = self.store.get_ref(key)
        if ref is None:
            return None
        target, cost = ref
        resolved = self.read_manifest(target)
        if resolved is None:
            return None
        models = {}
        for model, blob in resolved[0].items():
            name = name_of(model)
            try:
                model_state = self._decode(blob, index)
                if model_state is None:
                    return None
            except origins.Unresolved as exc:
                self.store.warn_once(
                    "origin",
                    "statecache: the cached %s takes a value the loaded migrations do not have "
                    "(%s); treating it as a miss",
                    name,
                    exc,
                )
                return None
            except codec.Disallowed as exc:
                self.store.warn_once(
                    "disallowed",
                    "statecache: the cached %s names %s; treating it as a miss",
                    name,
                    exc,
                )
                return None
            except Exception as exc:
                self.store.warn_once(
                    "decode", "statecache: cannot decode %s (%s): treating as a miss", name, exc
                )
                return None
            if model_key(model_state) != model:
                self.store.warn_once("misnamed", "statecache: blob %s is not %s", blob.hex(), name)
                return None
            models[model] = model_state
        self.store.touch_ref(key)
        return ProjectState(models=models, real_apps=set(real_apps)), cost

    def _decode(self, blob: bytes, index: origins.Index | None) -> ModelState | None:
        """The ModelState in `blob` (None if the store does not have it), decoded once per
        process: a migrate loads two or three states that share nearly every model.

        Each call returns its own copy, made as Django's `ModelState.clone()` makes one, with
        every field copied too (`_copy_field`): Django's state operations change the fields of
        a state in place (`ProjectState.rename_field` repoints `to_fields` and
        `remote_field.field_name`), and a later load must not see that. A blob that takes
        values by origin is decoded every time: those values are the loaded migrations' own
        objects, checked against the bytes at each decode."""
        kept = self._decoded.get(blob)
        if kept is None:
            data = self.store.get_object(blob, BLOB)
            if data is None:
                return None
            before = index.resolved if index is not None else 0
            decoded = codec.decode_model_state(data, index=index)
            if index is not None and index.resolved != before:
                return decoded
            if len(self._decoded) >= MAX_DECODED:
                self._decoded.clear()
            kept = self._decoded[blob] = decoded
        state = kept.clone()
        state.fields = {name: _copy_field(field) for name, field in kept.fields.items()}
        return state

    def snapshot_of(self, key: bytes) -> Snapshot | None:
        """The manifest behind a key, to base deltas on without decoding the models."""
        ref = self.store.get_ref(key)
        if ref is None:
            return None
        resolved = self.read_manifest(ref[0])
        if resolved is None:
            return None
        return Snapshot(ref[0], dict(resolved[0]), resolved[1])


def _copy_field(field: Field) -> Field:
    """A copy of a decoded field that shares nothing Django's state operations change in
    place: Django's own `Field.__deepcopy__` where the class keeps it (it copies the field and
    its remote field), else `Field.clone()`, the deconstruction the field was decoded from."""
    cls = type(field)
    if cls.__deepcopy__ is Field.__deepcopy__ and cls.__reduce__ is Field.__reduce__:
        return copy.deepcopy(field)
    return field.clone()


_current: dict[tuple, Snapshots] = {}


def current() -> Snapshots:
    """One Snapshots per cache directory, signing key and umask, per process (it memoizes
    resolved manifests): a long-lived process whose settings change gets a store that
    follows them."""
    config = conf.current()
    setup = (str(conf.cache_dir()), config.signing_key, config.umask)
    if setup not in _current:
        directory, signing_key, umask = setup
        _current[setup] = Snapshots(Store(directory, signing_key=signing_key, umask=umask))
    return _current[setup]


# Counters reach the cache directory when the process ends (a killed process loses its own).
_live: weakref.WeakSet[Snapshots] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for snapshots in list(_live):
        try:
            snapshots.flush_stats()
        except Exception:  # pragma: no cover - never fail an exiting process
            logger.debug("statecache: cannot save counters", exc_info=True)
