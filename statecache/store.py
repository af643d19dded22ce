"""The on-disk cache: content-addressed objects and refs, written atomically.

Layout (STORE_VERSION is part of the path, so another format never reads this one)::

    <dir>/CACHEDIR.TAG            tells backup tools to skip the directory
    <dir>/.gitignore              "*": git ignores the directory (as pytest's and ruff's caches)
    <dir>/v1/objects/ab/cdef...   blobs (one encoded ModelState) and manifests, named by the
                                  xxh3-128 of their bytes (a type header followed by the payload)
    <dir>/v1/refs/ab/cdef...      a state key -> the manifest of that state, with a checksum;
                                  its mtime is the state's last use (prune drops the oldest first)
    <dir>/v1/tmp/                 files being written; renamed into place when complete
    <dir>/v1/stats/0..f           hit/miss counters, one shard per process id modulo 16
    <dir>/v1/volatile             where migration modules compute values at import time
                                  (volatile.py), with a checksum; rewritten whole by warm
    <dir>/v1/lock                 shared by writers, exclusive for clear and prune

Every read is verified (object names are their hashes, refs carry a checksum bound to their key)
and bounded in size, so a truncated, bit-flipped, oversized or foreign file is a miss, never a
wrong state; a bad file is removed so that the next write heals it. Any OS error while writing
turns the store read-only for the rest of the process, with one warning: a cache problem never
stops a migration.

Symbolic links: the directory itself may be a link (the user chose the path), but nothing under
it is ever followed. Every file is opened relative to a descriptor of its directory, each
directory on the way opened with O_NOFOLLOW (as git and ccache refuse links in their stores), so
a link where an entry, a directory, a lock or a counter shard should be is damage: a miss, logged
once, and the link itself is what gets removed, never its target. Walks (prune, clear, status)
never descend through a link.

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
import errno
import hashlib
import json
import logging
import os
import secrets
import stat
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import xxhash

if TYPE_CHECKING:
    import filelock

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
# Bounds on what one read may take, far above any real entry (the largest blob seen, a model of
# 300 fields, is under 64 KiB; a manifest of 10,000 models under 1 MiB): a larger file is
# damage, refused from its size before anything is read.
MAX_BLOB = 16 * 2**20
MAX_MANIFEST = 64 * 2**20
MAX_OBJECT = max(MAX_BLOB, MAX_MANIFEST)
MAX_STATS = 64 * 2**10
MAX_VOLATILE = 2**20
VOLATILE = b"SCV1"
MAX_SIZES = {BLOB: MAX_BLOB, MANIFEST: MAX_MANIFEST}
CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by django-statecache.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)
GITIGNORE = b"# Created by django-statecache.\n*\n"
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

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
# Directories on the way to a file: O_PATH where there is one (no read permission needed to
# pass through, as with a path), never following a link.
_DIR_OPEN = os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR)
LOCK_POLL = 0.05


def object_hash(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def _ref_check(key: bytes, body: bytes) -> bytes:
    return xxhash.xxh3_64_digest(key + body)


def _tag(secret: bytes, kind: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(
        data, key=secret, digest_size=TAG_SIZE, person=b"statecache." + kind
    ).digest()


class Damaged(OSError):
    """Something other than a regular file or directory where the store expects one (a link,
    a file in place of a directory, an oversized file)."""


def _read_bounded(fd: int, limit: int) -> bytes | None:
    """At most `limit` bytes of an open file; None if it holds more (it may grow)."""
    chunks = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove `name` in the directory `dir_fd`: a file or link is unlinked (a link's target is
    never touched), a directory emptied the same way, never through a link, then removed."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except (IsADirectoryError, PermissionError) as exc:
        # Linux says EISDIR for a directory; POSIX allows EPERM.
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            raise exc
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    try:
        with os.scandir(fd) as entries:
            names = [entry.name for entry in entries]
        for child in names:
            _remove_at(fd, child)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=dir_fd)


class FlockLock:
    """An exclusive flock on a file the store opened itself (never through a link), waiting up
    to `timeout` seconds (-1: for ever); raises filelock.Timeout, as filelock does."""

    def __init__(
        self,
        opener: Callable[[], int],
        path: Path,
        timeout: float,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self._opener = opener
        self.lock_file = str(path)
        self.timeout = timeout
        self._on_wait = on_wait
        self._fd: int | None = None

    def acquire(self) -> FlockLock:
        fd = self._opener()
        deadline = None if self.timeout < 0 else time.monotonic() + self.timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    import filelock  # imported when needed: it costs a migrate ~10 ms

                    raise filelock.Timeout(self.lock_file)
                if not waited and self._on_wait is not None:
                    self._on_wait()
                waited = True
                time.sleep(LOCK_POLL)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FlockLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


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
        # Read-only from the start where the system check already said it cannot be written
        # (statecache.W001): the problem is reported once.
        self.writable = str(self.root) not in conf.reported_unwritable
        # Write sequences and writes that stored nothing (refused, busy or failed): lets a
        # caller tell "not stored" from "uncacheable".
        self.refused_writes = 0
        # An unusable signing key is None here: statecache is off then (conf.py), and nothing
        # reads this store; an unusable umask is not applied (the system check says so).
        if signing_key is _CONFIGURED:
            signing_key = conf.current().signing_key
        if umask is _CONFIGURED:
            umask = conf.current().umask
        self.signing_key: bytes | None = signing_key  # type: ignore[assignment]
        self.umask: int | None = umask  # type: ignore[assignment]
        # Kinds of problems already logged. "os" (the directory cannot be read or written) is
        # one kind for reads and writes alike: one line per run, and none after W001.
        self._warned: set[str] = set() if self.writable else {"os"}
        self._prepared = False
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

    def _parts(self, path: Path) -> tuple[str, ...]:
        """`path` as names below the root (paths are the store's own, so this is lexical;
        by string, since Path.relative_to costs more than the read it prepares)."""
        prefix = os.path.join(str(self.root), "")
        text = str(path)
        if text.startswith(prefix) and os.altsep is None:
            return tuple(name for name in text[len(prefix) :].split(os.sep) if name)
        return Path(path).relative_to(self.root).parts

    # -- descriptors: nothing below the root is reached through a link ---------------------------

    def _make_root(self) -> None:
        """Create the root and its missing parents (the configured path: links followed)."""
        missing = []
        probe = self.root
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

    def _subdir(self, fd: int, name: str, create: bool, where: Path) -> int:
        try:
            return os.open(name, _DIR_OPEN, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno not in _LINK_ERRORS:
                raise
            if not create or not self.writable:
                raise Damaged(exc.errno, "a link or a file where a directory should be", str(where))
            # A link or a file where one of our directories belongs: remove it (the link, not
            # what it points to) and make the directory.
            self.warn_once(
                "not a directory",
                "statecache: removing %s (a link or a file where a directory should be)",
                where,
            )
            os.unlink(name, dir_fd=fd)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, self.dir_mode, dir_fd=fd)
        if self.umask is not None:  # beyond the process umask; adds setgid
            with contextlib.suppress(OSError):
                made = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=fd)
                try:
                    os.fchmod(made, self.dir_mode)
                finally:
                    os.close(made)
        return os.open(name, _DIR_OPEN, dir_fd=fd)

    @contextlib.contextmanager
    def _dir(self, parts: tuple[str, ...] | list[str], create: bool = False) -> Iterator[int]:
        """A descriptor of root/parts..., each directory below the root opened without
        following links (with `create`, missing ones are made and links in the way removed).
        Raises FileNotFoundError, Damaged or another OSError."""
        if create:
            self._make_root()
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        except NotADirectoryError as exc:  # no cache there (a file is reported by the checks)
            raise FileNotFoundError(errno.ENOENT, str(exc), str(self.root))
        try:
            where = self.root
            for name in parts:
                where = where / name
                inner = self._subdir(fd, name, create, where)
                os.close(fd)
                fd = inner
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _listing(self, parts: tuple[str, ...]) -> Iterator[list[os.DirEntry]]:
        with self._dir(parts) as fd:
            try:
                readable = os.open(".", os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC, dir_fd=fd)
            except OSError as exc:  # say which directory, not "."
                raise type(exc)(exc.errno, exc.strerror, str(self.root.joinpath(*parts)))
            try:
                with os.scandir(readable) as entries:
                    yield sorted(entries, key=lambda entry: entry.name)
            finally:
                os.close(readable)

    def lstat(self, path: Path) -> os.stat_result | None:
        """What is at `path` itself (a link is not followed), or None."""
        *dirs, name = self._parts(path)
        try:
            with self._dir(dirs) as fd:
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None

    def remove(self, path: Path) -> None:
        """Remove what is at `path` (a directory with its content), never through a link.
        Raises OSError when it cannot."""
        *dirs, name = self._parts(path)
        try:
            with self._dir(dirs) as fd:
                _remove_at(fd, name)
        except FileNotFoundError:
            pass

    # -- locks ---------------------------------------------------------------------------------

    def lock(
        self, timeout: float = -1, on_wait: Callable[[], None] | None = None
    ) -> FlockLock | filelock.FileLock:
        """The exclusive lock of destructive commands (clear, prune): it waits until no writer
        is in the middle of a state, and while it is held writers store nothing. `on_wait` is
        called once if it has to wait."""
        return self._file_lock(self.lock_path, timeout, on_wait)

    def warm_lock(
        self, timeout: float = -1, on_wait: Callable[[], None] | None = None
    ) -> FlockLock | filelock.FileLock:
        """Taken by `warm` only, so that concurrent warms take turns instead of racing."""
        return self._file_lock(self.base / "warm.lock", timeout, on_wait)

    def _file_lock(
        self, path: Path, timeout: float, on_wait: Callable[[], None] | None
    ) -> FlockLock | filelock.FileLock:
        if fcntl is None:  # pragma: no cover - Windows
            import filelock

            self._make_root()
            return filelock.FileLock(str(path), timeout=timeout, mode=self.file_mode)
        os.close(self._open_shared(path))  # raises OSError now, not inside `with`
        return FlockLock(lambda: self._open_shared(path), path, timeout, on_wait)

    def _open_shared(self, path: Path) -> int:
        """Open (creating) a file every writer of the store opens: locks and counters. A link
        in its place is removed (never followed); on a read-only directory an existing file is
        opened read-only (flock needs no write access)."""
        *dirs, name = self._parts(path)
        flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK
        with self._dir(dirs, create=self.writable) as dir_fd:
            for attempt in (1, 2):
                try:
                    fd = os.open(name, flags, self.file_mode, dir_fd=dir_fd)
                    break
                except OSError as exc:
                    if exc.errno == errno.ELOOP and attempt == 1 and self.writable:
                        self.warn_once(
                            "link", "statecache: removing %s (a link, not followed)", path
                        )
                        os.unlink(name, dir_fd=dir_fd)
                        continue
                    if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                        raise
                    # Another user's file, or a read-only directory: read-only to us.
                    fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
                    break
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Damaged(errno.EINVAL, "not a regular file", str(path))
        if self.umask is not None:
            with contextlib.suppress(OSError):  # only the owner may; theirs is right already
                os.fchmod(fd, self.file_mode)
        return fd

    def _shared_fd(self) -> int | None:
        # flock belongs to the open file description, which a forked child (the test runner's
        # --parallel workers) would share with its parent: each process opens its own.
        if self._lock_fd is None or self._lock_pid != os.getpid():
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
        if not ok:
            self.refused_writes += 1
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
            "os",
            "statecache: cannot write to %s (%s); using it read-only for this run",
            self.root,
            exc,
        )

    # -- writing -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if not self._prepared:
            with self._dir((self.base.name, "tmp"), create=True):
                pass
            for name, content in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", GITIGNORE)):
                if self.lstat(self.root / name) is None:  # whatever is there is left alone
                    self._write_file(self.root / name, content)
            self._prepared = True

    def _write_file(self, path: Path, data: bytes) -> None:
        """Write to a new temporary file, then rename it into place (raises OSError). The
        rename replaces a link in the entry's place, never writes through it."""
        *dirs, name = self._parts(path)
        tmp = f"{name[:8]}.{os.getpid()}.{secrets.token_hex(6)}"
        with (
            self._dir((self.base.name, "tmp"), create=True) as tmp_fd,
            self._dir(dirs, create=True) as dir_fd,
        ):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
            fd = os.open(tmp, flags, self.file_mode, dir_fd=tmp_fd)
            try:
                try:
                    if self.umask is not None:
                        os.fchmod(fd, self.file_mode)
                    _write_all(fd, data)
                finally:
                    os.close(fd)
                os.replace(tmp, name, src_dir_fd=tmp_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=tmp_fd)
                raise

    def _write_atomic(self, path: Path, data: bytes) -> bool:
        """Whether `path` now holds `data`, written by this call."""
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
                    self._prepared = False
                    if attempt == 2:
                        self._write_failed(exc)
                except OSError as exc:
                    self._write_failed(exc)
                    break
            self.refused_writes += 1
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
        return self._read_object(digest, MAX_OBJECT) is not None

    def put_ref(self, key: bytes, target: bytes, cost: float = 0.0) -> tuple[bool, bool]:
        """Point `key` at the manifest `target`. Return whether the store now holds that ref,
        and whether this call wrote it (an intact ref to the same manifest stays, with its
        recorded cost; a damaged one is discarded by get_ref and written again)."""
        existing = self.get_ref(key)
        if existing is not None and existing[0] == target:
            return True, False
        body = REF_BODY.pack(REF, target, cost)
        data = body + _ref_check(key, body)
        if self.signing_key is not None:
            data += _tag(self.signing_key, b"ref", key + data)
        written = self._write_atomic(self.ref_path(key), data)
        return written, written

    def set_ref(self, key: bytes, target: bytes, cost: float = 0.0) -> bool:
        """Whether this call wrote the ref (see put_ref for whether the store holds it)."""
        return self.put_ref(key, target, cost)[1]

    # -- reading -------------------------------------------------------------------------------

    def _discard(self, path: Path, why: str) -> None:
        self.warn_once(why, "statecache: ignoring %s (%s)", path, why)
        if self.writable:
            with contextlib.suppress(OSError):
                self.remove(path)

    def _read(self, path: Path, limit: int) -> bytes | None:
        """The bytes of the regular file at `path` if it holds at most `limit` (a link, a
        special or an oversized file is discarded as damage), or None."""
        *dirs, name = self._parts(path)
        try:
            with self._dir(dirs) as dir_fd:
                flags = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK
                fd = os.open(name, flags, dir_fd=dir_fd)
                try:
                    info = os.fstat(fd)
                    if not stat.S_ISREG(info.st_mode):
                        raise Damaged(errno.EINVAL, "not a regular file")
                    data = None if info.st_size > limit else _read_bounded(fd, limit)
                finally:
                    os.close(fd)
        except FileNotFoundError:  # no such entry
            return None
        except Damaged as exc:
            self._discard_damage(path, dirs, exc)
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the entry itself is a link (O_NOFOLLOW)
                self._discard(path, "a link, not followed")
            elif exc.errno in _LINK_ERRORS:
                self.warn_once(
                    "link", "statecache: ignoring %s (a link or a file on its way)", path
                )
            else:
                self.warn_once("os", "statecache: cannot read %s (%s)", path, exc)
            return None
        if data is None:
            self._discard(path, "larger than any real entry")
        return data

    def _discard_damage(self, path: Path, dirs: list[str], exc: Damaged) -> None:
        if exc.filename:  # a directory on the way: writes and prune remove it
            self.warn_once("link", "statecache: ignoring %s (%s)", exc.filename, exc.strerror)
        else:
            self._discard(path, exc.strerror or "damaged")

    def _read_object(self, digest: bytes, limit: int) -> bytes | None:
        """The verified bytes of an object (type header and payload), or None."""
        path = self.object_path(digest)
        data = self._read(path, limit + TAG_SIZE)
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
        data = self._read_object(digest, MAX_SIZES.get(kind, MAX_OBJECT))
        if data is None:
            return None
        if data[: len(kind)] != kind:
            self.warn_once("kind", "statecache: %s is not a %r", self.object_path(digest), kind)
            return None
        return data[len(kind) :]

    def get_ref(self, key: bytes) -> tuple[bytes, float] | None:
        """The manifest a key points to and the recorded cost, or None."""
        path = self.ref_path(key)
        data = self._read(path, SIGNED_REF_SIZE)
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
        """Whether a file is stored under the key (not read: see has_state)."""
        found = self.lstat(self.ref_path(key))
        return found is not None and stat.S_ISREG(found.st_mode)

    def has_state(self, key: bytes) -> bool:
        """Whether the key has a valid ref whose manifest is stored (the ref is read and
        checked, the manifest only looked up: loading it checks it)."""
        ref = self.get_ref(key)
        if ref is None:
            return False
        found = self.lstat(self.object_path(ref[0]))
        return found is not None and stat.S_ISREG(found.st_mode)

    def touch_ref(self, key: bytes) -> None:
        """Record a use of the state (prune removes the least recently used first)."""
        if self.writable:
            *dirs, name = self._parts(self.ref_path(key))
            with contextlib.suppress(OSError), self._dir(dirs) as fd:
                os.utime(name, dir_fd=fd, follow_symlinks=False)

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
                fd = self._open_shared(self.base / "stats" / f"{os.getpid() % STATS_SHARDS:x}")
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    counters = _parse_stats(_read_bounded(fd, MAX_STATS) or b"")
                    for name, value in deltas.items():
                        counters[name] = counters.get(name, 0) + value
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.ftruncate(fd, 0)
                    _write_all(fd, json.dumps(counters, sort_keys=True).encode())
                finally:
                    os.close(fd)
                return True
            except OSError as exc:
                self._write_failed(exc)
                self.refused_writes += 1
                return False

    def read_stats(self) -> dict[str, int]:
        totals = dict.fromkeys(STATS_FIELDS, 0)
        stats = self.base / "stats"
        try:
            with self._listing(self._parts(stats)) as entries:
                names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                self.warn_once("os", "statecache: cannot read %s (%s)", stats, exc)
            return totals
        for name in names:
            data = self._read(stats / name, MAX_STATS)
            for field_name, value in _parse_stats(data or b"").items():
                totals[field_name] = totals.get(field_name, 0) + value
        return totals

    # -- volatile values ------------------------------------------------------------------------

    def put_volatile(self, payload: bytes) -> bool:
        """Replace the record of volatile values (volatile.py); whether it was written."""
        data = VOLATILE + payload
        data += xxhash.xxh3_64_digest(data)
        if self.signing_key is not None:
            data += _tag(self.signing_key, b"volatile", data)
        return self._write_atomic(self.base / "volatile", data)

    def get_volatile(self) -> bytes | None:
        """The payload of the record of volatile values, verified, or None."""
        path = self.base / "volatile"
        data = self._read(path, MAX_VOLATILE)
        if data is None:
            return None
        if self.signing_key is not None:
            body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
            if len(data) <= TAG_SIZE or tag != _tag(self.signing_key, b"volatile", body):
                self.warn_once("unsigned", "statecache: ignoring %s (no valid signature)", path)
                return None
            data = body
        body, check = data[:-8], data[-8:]
        if len(data) < len(VOLATILE) + 8 or not body.startswith(VOLATILE):
            self._discard(path, "foreign file")
            return None
        if xxhash.xxh3_64_digest(body) != check:
            # A record signed by a key we do not have ends with its tag: left alone.
            if self.signing_key is None and len(data) > TAG_SIZE + 8:
                plain = data[:-TAG_SIZE]
                if xxhash.xxh3_64_digest(plain[:-8]) == plain[-8:]:
                    return plain[len(VOLATILE) : -8]
            self._discard(path, "corrupt record")
            return None
        return body[len(VOLATILE) :]

    # -- inventory -----------------------------------------------------------------------------

    def iter_files(self, section: str) -> Iterator[Path]:
        """Every path at an entry's depth in `section`, and every link or file found where a
        directory should be (the section itself, a fan directory): what prune removes as not
        an entry. Links are listed, never descended. Raises OSError for an unreadable section."""
        directory = self.base / section
        try:
            with self._listing(self._parts(directory)) as fans:
                found = []
                for fan in fans:
                    if not fan.is_dir(follow_symlinks=False):
                        found.append(directory / fan.name)
                        continue
                    try:
                        with self._listing(self._parts(directory / fan.name)) as entries:
                            found.extend(directory / fan.name / e.name for e in entries)
                    except (FileNotFoundError, Damaged):  # replaced since it was listed
                        found.append(directory / fan.name)
        except FileNotFoundError:
            return
        except Damaged:
            yield directory
            return
        yield from found

    @staticmethod
    def digest_of(path: Path) -> bytes | None:
        """The hash or key an entry's path names (None for a file that is no entry)."""
        try:
            digest = bytes.fromhex(path.parent.name + path.name)
        except ValueError:
            return None
        return digest if len(digest) == HASH_SIZE else None

    def sizes(self) -> dict[str, int]:
        """Entries and bytes, from the directory listing and lstat() alone (no file is read);
        what is not a regular file named as an entry is not counted."""
        counts = {"objects": 0, "refs": 0, "bytes": 0, "tmp": 0}
        for section in ("objects", "refs"):
            for path in self.iter_files(section):
                info = self.lstat(path) if self.digest_of(path) is not None else None
                if info is not None and stat.S_ISREG(info.st_mode):
                    counts["bytes"] += info.st_size
                    counts[section] += 1
        try:
            with self._listing(self._parts(self.base / "tmp")) as entries:
                counts["tmp"] = len(entries)
        except (FileNotFoundError, Damaged):
            pass
        return counts

    def other_versions(self) -> list[str]:
        """Directories of other store formats beside ours (left alone by every command)."""
        try:
            with self._listing(()) as entries:
                return [
                    e.name
                    for e in entries
                    if e.is_dir(follow_symlinks=False)
                    and e.name[:1] == "v"
                    and e.name[1:].isdigit()
                    and e.name != self.base.name
                ]
        except OSError:
            return []

    def stale_tmp(self, max_age: float) -> list[Path]:
        """Temporary files older than `max_age` seconds (left by a killed writer), and whatever
        no writer makes there (links, directories), or `tmp` itself if it is not a directory."""
        directory = self.base / "tmp"
        limit = time.time() - max_age
        found = []
        try:
            with self._listing(self._parts(directory)) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        if not stat.S_ISREG(info.st_mode) or info.st_mtime <= limit:
                            found.append(directory / entry.name)
        except FileNotFoundError:
            return []
        except Damaged:
            return [directory]
        return found

    def repair_base(self) -> bool:
        """Remove a link or a file in place of the format directory (damage, never followed);
        whether the format directory is now a directory or absent."""
        found = self.lstat(self.base)
        if found is None or stat.S_ISDIR(found.st_mode):
            return True
        self.warn_once(
            "not a directory",
            "statecache: removing %s (a link or a file where a directory should be)",
            self.base,
        )
        self.remove(self.base)
        return True

    def clear(self) -> None:
        """Remove every entry of this format (the lock files stay; other formats' directories
        are left alone); a link in place of the format directory is removed, not followed."""
        found = self.lstat(self.base)
        if found is None:
            return
        if not stat.S_ISDIR(found.st_mode):
            self.repair_base()
            return
        for section in ("objects", "refs", "tmp", "stats", "volatile"):
            self.remove(self.base / section)


def _parse_stats(data: bytes) -> dict[str, int]:
    try:
        counters = json.loads(data or b"{}")
    except ValueError:
        return {}
    if not isinstance(counters, dict):
        return {}
    return {k: v for k, v in counters.items() if isinstance(k, str) and type(v) is int}
