"""The on-disk cache: content-addressed objects and refs, written atomically.

Layout (STORE_VERSION is part of the path, so another format never reads this one)::

    <dir>/v1/objects/ab/cdef...   blobs (one encoded ModelState) and manifests, named by the
                                  xxh3-128 of their bytes (a type header followed by the payload)
    <dir>/v1/refs/ab/cdef...      a state key -> the manifest of that state, with a checksum
    <dir>/v1/tmp/                 files being written; renamed into place when complete
    <dir>/v1/lock                 taken by destructive commands (clear, prune)

Every read is verified (object names are their hashes, refs carry a checksum bound to their key),
so a truncated, bit-flipped or foreign file is a miss, never a wrong state; a bad file is removed
so that the next write heals it. Any OS error while writing turns the store read-only for the
rest of the process, with one warning: a cache problem never stops a migration.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import filelock
import xxhash

logger = logging.getLogger("statecache")

STORE_VERSION = 1
BLOB = b"SCB1"
MANIFEST = b"SCM1"
REF = b"SCR1"
HASH_SIZE = 16
# A ref: header, manifest hash, what the state cost to compute (float32 seconds), checksum.
REF_BODY = struct.Struct("<4s16sf")
REF_SIZE = REF_BODY.size + 8


def object_hash(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def _ref_check(key: bytes, body: bytes) -> bytes:
    return xxhash.xxh3_64_digest(key + body)


class Store:
    def __init__(self, root: os.PathLike | str) -> None:
        self.root = Path(root)
        self.base = self.root / f"v{STORE_VERSION}"
        self.writable = True
        self._warned: set[str] = set()
        self._prepared = False

    # -- paths ---------------------------------------------------------------------------------

    @staticmethod
    def _fan(directory: Path, digest: bytes) -> Path:
        name = digest.hex()
        return directory / name[:2] / name[2:]

    def object_path(self, digest: bytes) -> Path:
        return self._fan(self.base / "objects", digest)

    def ref_path(self, key: bytes) -> Path:
        return self._fan(self.base / "refs", key)

    @property
    def lock_path(self) -> Path:
        return self.base / "lock"

    def lock(self, timeout: float = -1) -> filelock.FileLock:
        """The directory's lock, held by clear and by warm (concurrent warms take turns)."""
        self.base.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.lock_path), timeout=timeout)

    # -- problems ------------------------------------------------------------------------------

    def _warn_once(self, what: str, message: str, *args: object) -> None:
        if what not in self._warned:
            self._warned.add(what)
            logger.warning(message, *args)

    def _write_failed(self, exc: OSError) -> None:
        self.writable = False
        self._warn_once(
            "write",
            "statecache: cannot write to %s (%s); using it read-only for this run",
            self.root,
            exc,
        )

    # -- writing -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if not self._prepared:
            (self.base / "tmp").mkdir(parents=True, exist_ok=True)
            self._prepared = True

    def _write_atomic(self, path: Path, data: bytes) -> bool:
        if not self.writable:
            return False
        tmp_name = None
        try:
            self._prepare()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.base / "tmp", prefix=path.name[:8] + ".")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp_name, path)
            return True
        except OSError as exc:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass
            self._write_failed(exc)
            return False

    def put_object(self, kind: bytes, payload: bytes) -> tuple[bytes | None, bool]:
        """Store an object. Return its hash if the store now holds it (None if it could not
        be written), and whether this call wrote it."""
        data = kind + payload
        digest = object_hash(data)
        if self.has_object(digest):
            return digest, False
        if self._write_atomic(self.object_path(digest), data):
            return digest, True
        return None, False

    def has_object(self, digest: bytes) -> bool:
        """Whether a valid object is stored: a damaged one is removed and does not count, so
        that writing it again heals the store."""
        path = self.object_path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            return False
        if object_hash(data) != digest:
            self._discard(path, "corrupt object")
            return False
        return True

    def set_ref(self, key: bytes, target: bytes, cost: float = 0.0) -> bool:
        # An intact ref to the same manifest stays (with its recorded cost); a damaged one is
        # discarded by get_ref and written again.
        existing = self.get_ref(key)
        if existing is not None and existing[0] == target:
            return False
        body = REF_BODY.pack(REF, target, cost)
        return self._write_atomic(self.ref_path(key), body + _ref_check(key, body))

    # -- reading -------------------------------------------------------------------------------

    def _discard(self, path: Path, why: str) -> None:
        self._warn_once(why + str(path), "statecache: ignoring %s (%s)", path, why)
        if self.writable:
            try:
                path.unlink()
            except OSError:
                pass

    def get_object(self, digest: bytes, kind: bytes) -> bytes | None:
        path = self.object_path(digest)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # no such entry
            return None
        except OSError as exc:
            self._warn_once("read", "statecache: cannot read %s (%s)", path, exc)
            return None
        if object_hash(data) != digest:
            self._discard(path, "corrupt object")
            return None
        if data[: len(kind)] != kind:
            self._warn_once("kind" + digest.hex(), "statecache: %s is not a %r", path, kind)
            return None
        return data[len(kind) :]

    def get_ref(self, key: bytes) -> tuple[bytes, float] | None:
        """The manifest a key points to and the recorded cost, or None."""
        path = self.ref_path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # no such entry
            return None
        except OSError as exc:
            self._warn_once("read", "statecache: cannot read %s (%s)", path, exc)
            return None
        body = data[: REF_BODY.size]
        if len(data) != REF_SIZE or data[REF_BODY.size :] != _ref_check(key, body):
            self._discard(path, "corrupt ref")
            return None
        header, target, cost = REF_BODY.unpack(body)
        if header != REF:
            self._discard(path, "foreign ref")
            return None
        return target, cost

    def has_ref(self, key: bytes) -> bool:
        return self.ref_path(key).exists()

    # -- inventory -----------------------------------------------------------------------------

    def iter_files(self, section: str) -> Iterator[Path]:
        directory = self.base / section
        if not directory.is_dir():
            return
        for fan in sorted(directory.iterdir()):
            if fan.is_dir():
                yield from sorted(fan.iterdir())

    def sizes(self) -> dict[str, int]:
        counts = {"objects": 0, "refs": 0, "bytes": 0}
        for section in ("objects", "refs"):
            for path in self.iter_files(section):
                try:
                    counts["bytes"] += path.stat().st_size
                except OSError:
                    continue
                counts[section] += 1
        return counts
