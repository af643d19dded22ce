"""The on-disk cache: content-addressed objects and refs, written atomically.

Layout (STORE_VERSION is part of the path, so another format never reads this one)::

    <dir>/CACHEDIR.TAG            tells backup tools to skip the directory
    <dir>/v1/objects/ab/cdef...   blobs (one encoded ModelState) and manifests, named by the
                                  xxh3-128 of their bytes (a type header followed by the payload)
    <dir>/v1/refs/ab/cdef...      a state key -> the manifest of that state, with a checksum;
                                  its mtime is the state's last use (prune drops the oldest first)
    <dir>/v1/tmp/                 files being written; renamed into place when complete
    <dir>/v1/stats/0..f           hit/miss counters, one shard per process id modulo 16
    <dir>/v1/lock                 shared by writers, exclusive for clear and prune

Every read is verified (object names are their hashes, refs carry a checksum bound to their key),
so a truncated, bit-flipped or foreign file is a miss, never a wrong state; a bad file is removed
so that the next write heals it. Any OS error while writing turns the store read-only for the
rest of the process, with one warning: a cache problem never stops a migration.

Locking: readers never lock. A write sequence (the blobs, manifest and ref of one state) holds
a shared flock on `lock`, taken without waiting: while clear or prune holds it exclusively the
writer stores nothing and goes on. So clear and prune never remove what a writer is about to
point a ref at, and neither side ever blocks a migration.

With a signing key, objects end with a keyed BLAKE2b tag of their bytes and refs with a tag of
their key and body; a reader with a key ignores entries without a valid tag. A reader without a
key reads signed entries (it cannot check the tag) but never strips their tags.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import filelock
import xxhash

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers take no shared lock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("statecache")

STORE_VERSION = 1
BLOB = b"SCB1"
MANIFEST = b"SCM1"
REF = b"SCR1"
HASH_SIZE = 16
TAG_SIZE = 16
# A ref: header, manifest hash, what the state cost to compute (float32 seconds), checksum.
REF_BODY = struct.Struct("<4s16sf")
REF_SIZE = REF_BODY.size + 8
SIGNED_REF_SIZE = REF_SIZE + TAG_SIZE
CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by django-statecache.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)
STATS_SHARDS = 16
STATS_FIELDS = (
    "hits",
    "misses",
    "keyless",
    "written",
    "uncacheable",
    "unwritten",
    "blobs_written",
)
_CONFIGURED = object()


def object_hash(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def _ref_check(key: bytes, body: bytes) -> bytes:
    return xxhash.xxh3_64_digest(key + body)


def _tag(secret: bytes, kind: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(
        data, key=secret, digest_size=TAG_SIZE, person=b"statecache." + kind
    ).digest()


class Store:
    def __init__(
        self,
        root: os.PathLike | str,
        *,
        signing_key: bytes | None | object = _CONFIGURED,
        umask: int | None | object = _CONFIGURED,
    ) -> None:
        from . import conf

        self.root = Path(root)
        self.base = self.root / f"v{STORE_VERSION}"
        self.writable = True
        if signing_key is _CONFIGURED:
            try:
                signing_key = conf.signing_key()
            except conf.SettingError:
                signing_key = None  # conf.enabled() is False then: nothing reads this store
        if umask is _CONFIGURED:
            try:
                umask = conf.umask()
            except conf.SettingError:
                umask = None  # reported by the system check
        self.signing_key: bytes | None = signing_key  # type: ignore[assignment]
        self.umask: int | None = umask  # type: ignore[assignment]
        self._warned: set[str] = set()
        self._prepared = False
        self._dirs: set[Path] = set()
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._write_depth = 0
        self._write_ok = False

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

    @property
    def file_mode(self) -> int:
        return 0o666 & ~self.umask if self.umask is not None else 0o666

    @property
    def dir_mode(self) -> int:
        if self.umask is None:
            return 0o777
        # Group-shared mode: setgid directories keep every file in the directory's group.
        return (0o777 & ~self.umask) | 0o2000

    # -- locks ---------------------------------------------------------------------------------

    def lock(self, timeout: float = -1) -> filelock.FileLock:
        """The exclusive lock of destructive commands (clear, prune): it waits until no writer
        is in the middle of a state, and while it is held writers store nothing."""
        return self._file_lock(self.lock_path, timeout)

    def warm_lock(self, timeout: float = -1) -> filelock.FileLock:
        """Taken by `warm` only, so that concurrent warms take turns instead of racing."""
        return self._file_lock(self.base / "warm.lock", timeout)

    def _file_lock(self, path: Path, timeout: float) -> filelock.FileLock:
        self._mkdirs(self.base)
        with contextlib.suppress(OSError):  # created with the store's mode, for the team
            os.close(self._open_shared(path))
        return filelock.FileLock(str(path), timeout=timeout, mode=self.file_mode)

    def _open_shared(self, path: Path) -> int:
        """Open (creating) a file every writer of the store opens: locks and counters."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, self.file_mode)
        except PermissionError:  # another user's file, read-only to us
            return os.open(path, os.O_RDONLY)
        if self.umask is not None:
            with contextlib.suppress(OSError):  # only the owner may; theirs is right already
                os.fchmod(fd, self.file_mode)
        return fd

    def _shared_fd(self) -> int | None:
        # flock belongs to the open file description, which a forked child (the test runner's
        # --parallel workers) would share with its parent: each process opens its own.
        if self._lock_fd is None or self._lock_pid != os.getpid():
            self._mkdirs(self.base)
            self._lock_fd = self._open_shared(self.lock_path)
            self._lock_pid = os.getpid()
        return self._lock_fd

    @contextlib.contextmanager
    def writing(self) -> Iterator[bool]:
        """Hold the shared lock for one write sequence; yield whether writes may happen."""
        if self._write_depth:
            self._write_depth += 1
            try:
                yield self._write_ok and self.writable
            finally:
                self._write_depth -= 1
            return
        ok = self.writable
        fd = None
        if ok and fcntl is not None:
            try:
                fd = self._shared_fd()
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                fd, ok = None, False
                self.warn_once(
                    "busy",
                    "statecache: %s is being cleared or pruned; not storing states meanwhile",
                    self.root,
                    level=logging.INFO,
                )
            except OSError as exc:
                fd, ok = None, False
                self._write_failed(exc)
        self._write_depth, self._write_ok = 1, ok
        try:
            yield ok
        finally:
            self._write_depth = 0
            if fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- problems ------------------------------------------------------------------------------

    def warn_once(
        self, what: str, message: str, *args: object, level: int = logging.WARNING
    ) -> None:
        """Log a kind of problem once per process (later ones at debug level)."""
        if what not in self._warned:
            self._warned.add(what)
            logger.log(level, message, *args)
        else:
            logger.debug(message, *args)

    def _write_failed(self, exc: OSError) -> None:
        self.writable = False
        self.warn_once(
            "write",
            "statecache: cannot write to %s (%s); using it read-only for this run",
            self.root,
            exc,
        )

    # -- writing -------------------------------------------------------------------------------

    def _mkdirs(self, path: Path) -> None:
        """Create `path` and its missing parents with the store's directory mode."""
        if path in self._dirs:
            return
        missing = []
        probe = path
        while not probe.is_dir():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, self.dir_mode)
            except FileExistsError:
                if not directory.is_dir():
                    raise
                continue
            if self.umask is not None:  # beyond the process umask; adds setgid
                with contextlib.suppress(OSError):
                    os.chmod(directory, self.dir_mode)
        self._dirs.add(path)

    def _prepare(self) -> None:
        if not self._prepared:
            self._mkdirs(self.base / "tmp")
            tag = self.root / "CACHEDIR.TAG"
            if not tag.exists():
                self._write_file(tag, CACHEDIR_TAG)
            self._prepared = True

    def _write_file(self, path: Path, data: bytes) -> None:
        """Write to a new temporary file, then rename it into place (raises OSError)."""
        self._mkdirs(path.parent)
        tmp = self.base / "tmp" / f"{path.name[:8]}.{os.getpid()}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
        try:
            if self.umask is not None:
                os.fchmod(fd, self.file_mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _write_atomic(self, path: Path, data: bytes) -> bool:
        with self.writing() as ok:
            if not ok:
                return False
            for attempt in (1, 2):
                try:
                    self._prepare()
                    self._write_file(path, data)
                    return True
                except FileNotFoundError as exc:
                    # A clear between two write sequences removed directories we had made.
                    self._dirs.clear()
                    self._prepared = False
                    if attempt == 2:
                        self._write_failed(exc)
                except OSError as exc:
                    self._write_failed(exc)
                    return False
            return False

    def _object_bytes(self, data: bytes) -> bytes:
        if self.signing_key is None:
            return data
        return data + _tag(self.signing_key, b"obj", data)

    def put_object(self, kind: bytes, payload: bytes) -> tuple[bytes | None, bool]:
        """Store an object. Return its hash if the store now holds it (None if it could not
        be written), and whether this call wrote it."""
        data = kind + payload
        digest = object_hash(data)
        if self.has_object(digest):
            return digest, False
        if self._write_atomic(self.object_path(digest), self._object_bytes(data)):
            return digest, True
        return None, False

    def has_object(self, digest: bytes) -> bool:
        """Whether a valid object is stored: a damaged one is removed and does not count, so
        that writing it again heals the store."""
        return self._read_object(digest) is not None

    def set_ref(self, key: bytes, target: bytes, cost: float = 0.0) -> bool:
        # An intact ref to the same manifest stays (with its recorded cost); a damaged one is
        # discarded by get_ref and written again.
        existing = self.get_ref(key)
        if existing is not None and existing[0] == target:
            return False
        body = REF_BODY.pack(REF, target, cost)
        data = body + _ref_check(key, body)
        if self.signing_key is not None:
            data += _tag(self.signing_key, b"ref", key + data)
        return self._write_atomic(self.ref_path(key), data)

    # -- reading -------------------------------------------------------------------------------

    def _discard(self, path: Path, why: str) -> None:
        self.warn_once(why, "statecache: ignoring %s (%s)", path, why)
        if self.writable:
            with contextlib.suppress(OSError):
                path.unlink()

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # no such entry
            return None
        except OSError as exc:
            self.warn_once("read", "statecache: cannot read %s (%s)", path, exc)
            return None

    def _read_object(self, digest: bytes) -> bytes | None:
        """The verified bytes of an object (type header and payload), or None."""
        path = self.object_path(digest)
        data = self._read(path)
        if data is None:
            return None
        plain = object_hash(data) == digest
        signed = not plain and len(data) > TAG_SIZE and object_hash(data[:-TAG_SIZE]) == digest
        if not (plain or signed):
            self._discard(path, "corrupt object")
            return None
        if self.signing_key is None:
            return data if plain else data[:-TAG_SIZE]
        if signed and data[-TAG_SIZE:] == _tag(self.signing_key, b"obj", data[:-TAG_SIZE]):
            return data[:-TAG_SIZE]
        # Intact but not signed with our key: ignored, and overwritten by our next write.
        self.warn_once("unsigned", "statecache: ignoring %s (no valid signature)", path)
        return None

    def get_object(self, digest: bytes, kind: bytes) -> bytes | None:
        data = self._read_object(digest)
        if data is None:
            return None
        if data[: len(kind)] != kind:
            self.warn_once("kind", "statecache: %s is not a %r", self.object_path(digest), kind)
            return None
        return data[len(kind) :]

    def get_ref(self, key: bytes) -> tuple[bytes, float] | None:
        """The manifest a key points to and the recorded cost, or None."""
        path = self.ref_path(key)
        data = self._read(path)
        if data is None:
            return None
        body = data[: REF_BODY.size]
        if len(data) not in (REF_SIZE, SIGNED_REF_SIZE) or data[
            REF_BODY.size : REF_SIZE
        ] != _ref_check(key, body):
            self._discard(path, "corrupt ref")
            return None
        header, target, cost = REF_BODY.unpack(body)
        if header != REF:
            self._discard(path, "foreign ref")
            return None
        if self.signing_key is not None and (
            len(data) != SIGNED_REF_SIZE
            or data[REF_SIZE:] != _tag(self.signing_key, b"ref", key + data[:REF_SIZE])
        ):
            self.warn_once("unsigned", "statecache: ignoring %s (no valid signature)", path)
            return None
        return target, cost

    def has_ref(self, key: bytes) -> bool:
        return self.ref_path(key).exists()

    def touch_ref(self, key: bytes) -> None:
        """Record a use of the state (prune removes the least recently used first)."""
        if self.writable:
            with contextlib.suppress(OSError):
                os.utime(self.ref_path(key))

    # -- counters ------------------------------------------------------------------------------

    def add_stats(self, deltas: dict[str, int]) -> bool:
        """Add to the persistent counters: one small file per shard, updated under its lock."""
        deltas = {name: value for name, value in deltas.items() if value}
        if not deltas:
            return True
        with self.writing() as ok:
            if not ok:
                return False
            try:
                self._mkdirs(self.base / "stats")
                path = self.base / "stats" / f"{os.getpid() % STATS_SHARDS:x}"
                fd = self._open_shared(path)
                with os.fdopen(fd, "r+b") as handle:
                    if fcntl is not None:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                    counters = _parse_stats(handle.read())
                    for name, value in deltas.items():
                        counters[name] = counters.get(name, 0) + value
                    handle.seek(0)
                    handle.truncate()
                    handle.write(json.dumps(counters, sort_keys=True).encode())
                return True
            except OSError as exc:
                self._write_failed(exc)
                return False

    def read_stats(self) -> dict[str, int]:
        totals = dict.fromkeys(STATS_FIELDS, 0)
        directory = self.base / "stats"
        if not directory.is_dir():
            return totals
        for path in directory.iterdir():
            try:
                counters = _parse_stats(path.read_bytes())
            except OSError:
                continue
            for name, value in counters.items():
                totals[name] = totals.get(name, 0) + value
        return totals

    # -- inventory -----------------------------------------------------------------------------

    def iter_files(self, section: str) -> Iterator[Path]:
        directory = self.base / section
        if not directory.is_dir():
            return
        for fan in sorted(directory.iterdir()):
            if fan.is_dir():
                yield from sorted(fan.iterdir())

    @staticmethod
    def digest_of(path: Path) -> bytes | None:
        """The hash or key an entry's path names (None for a file that is no entry)."""
        try:
            digest = bytes.fromhex(path.parent.name + path.name)
        except ValueError:
            return None
        return digest if len(digest) == HASH_SIZE else None

    def sizes(self) -> dict[str, int]:
        """Entries and bytes, from the directory listing and stat() alone (no file is read)."""
        counts = {"objects": 0, "refs": 0, "bytes": 0, "tmp": 0}
        for section in ("objects", "refs"):
            for path in self.iter_files(section):
                try:
                    counts["bytes"] += path.stat().st_size
                except OSError:
                    continue
                counts[section] += 1
        tmp = self.base / "tmp"
        if tmp.is_dir():
            counts["tmp"] = sum(1 for _ in tmp.iterdir())
        return counts

    def other_versions(self) -> list[str]:
        """Directories of other store formats beside ours (left alone by every command)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and p.name[:1] == "v" and p.name[1:].isdigit() and p != self.base
        )

    def stale_tmp(self, max_age: float) -> list[Path]:
        """Temporary files older than `max_age` seconds: left by a killed writer."""
        directory = self.base / "tmp"
        if not directory.is_dir():
            return []
        limit = time.time() - max_age
        found = []
        for path in directory.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime <= limit:
                    found.append(path)
        return found


def _parse_stats(data: bytes) -> dict[str, int]:
    try:
        counters = json.loads(data or b"{}")
    except ValueError:
        return {}
    if not isinstance(counters, dict):
        return {}
    return {k: v for k, v in counters.items() if isinstance(k, str) and type(v) is int}
