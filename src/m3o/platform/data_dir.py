"""The local profile's data directory: checked, kept private, and its key-encryption key.

The directory is created 0700 and the files in it 0600 (``m3o.db``, and SQLite's ``-wal``
and ``-shm`` files, which SQLite creates with the database file's mode); an existing
directory or file readable by others is tightened. A data directory that cannot be used
(a file, no write permission, a corrupt database) raises :class:`StartupError` with one
line naming the path and the problem.

"Read-only" is decided from the permission bits: a directory or database file with no write
bit at all is refused even when the process (root) could write it anyway, since that is
what its owner asked for; a real write failure (read-only file system) is reported too.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import IO

from m3o.services.auth.key_encryption import generate_kek, kek_id, parse_kek

__all__ = [
    "KEK_FILE",
    "StartupError",
    "check_sqlite_file",
    "hold_database",
    "key_encryption_key",
    "prepare_data_dir",
    "write_private",
]

KEK_FILE = "key-encryption-key"
_SQLITE_HEADER = b"SQLite format 3\x00"
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


class StartupError(Exception):
    """The platform cannot start; the message is one line naming the path and the problem."""


def _problem(error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.EROFS:
        return "read-only file system"
    return error.strerror or type(error).__name__


def prepare_data_dir(path: Path) -> None:
    """Create ``path`` (0700) or check it is a writable directory; keep it private."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"{path}: the data directory is not a directory")
    try:
        path.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StartupError(f"{path}: a parent of the data directory is not a directory") from None
    except OSError as exc:
        raise StartupError(f"{path}: cannot create the data directory ({_problem(exc)})") from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o222 == 0:
        raise StartupError(f"{path}: the data directory is read-only")
    _tighten(path, mode, _PRIVATE_DIR)


def check_sqlite_file(path: Path) -> None:
    """Check ``path`` is an SQLite database (or absent, or empty), writable; make it 0600.

    A missing file is created empty with mode 0600, so SQLite never makes it readable by
    others (its ``-wal`` and ``-shm`` files take the database file's mode).
    """
    if path.exists() and not path.is_file():
        raise StartupError(f"{path}: the database is not a file")
    try:
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, _PRIVATE_FILE))
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o222 == 0:
            raise StartupError(f"{path}: the database file is read-only")
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StartupError(f"{path}: cannot open the database ({_problem(exc)})") from None
    if header and header != _SQLITE_HEADER:
        raise StartupError(f"{path}: not an SQLite database (the file is corrupt or another kind)")
    for companion in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
        if companion.is_file():
            _tighten(companion, stat.S_IMODE(companion.stat().st_mode), _PRIVATE_FILE)


def hold_database(path: Path) -> IO[bytes]:
    """Hold the SQLite database ``path`` for this process alone (a lock on ``<path>.lock``,
    released when the returned file is closed or the process ends, however it ends).

    ``m3o serve`` keeps the counters of calls in memory and writes the database behind
    (:mod:`m3o.runtime.counters.owned`), so a second process serving the same database
    would work from stale counters: it is refused with one line instead.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock = lock_path.open("ab")
    except OSError as exc:
        raise StartupError(f"{lock_path}: cannot open the lock file ({_problem(exc)})") from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise StartupError(
                f"{path}: the database is in use by another `m3o serve` (stop it first)"
            ) from None
        raise StartupError(f"{lock_path}: cannot lock the database ({_problem(exc)})") from None
    _tighten(lock_path, stat.S_IMODE(lock_path.stat().st_mode), _PRIVATE_FILE)
    return lock


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (tightening an existing file first)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE_FILE)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), _PRIVATE_FILE)
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def key_encryption_key(path: Path, sealed_with: set[str]) -> str:
    """The key-encryption key kept in the file ``path``, made on first start.

    ``sealed_with`` holds the ids of the keys the stored signing keys are encrypted with. A
    new key is made only when none is: a missing or wrong file with encrypted signing keys
    is an error, never a reason to start over.
    """
    if not path.exists():
        if sealed_with:
            raise StartupError(
                f"{path}: missing, and the signing keys are encrypted with key-encryption key "
                f"{', '.join(sorted(sealed_with))} (restore the file or set "
                f"auth.key_encryption_key)"
            )
        text = generate_kek()
        try:
            write_private(path, text + "\n")
        except OSError as exc:
            raise StartupError(f"{path}: cannot write the key ({_problem(exc)})") from None
        return text
    try:
        text = path.read_text().strip()
        _tighten(path, stat.S_IMODE(path.stat().st_mode), _PRIVATE_FILE)
    except (OSError, UnicodeDecodeError) as exc:
        problem = _problem(exc) if isinstance(exc, OSError) else "not text"
        raise StartupError(f"{path}: cannot read the key-encryption key ({problem})") from None
    try:
        key = parse_kek(text)
    except ValueError:
        raise StartupError(
            f"{path}: not a key-encryption key (expected 32 bytes in base64)"
        ) from None
    unknown = sealed_with - {kek_id(key)}
    if unknown:
        raise StartupError(
            f"{path}: holds key-encryption key {kek_id(key)}, but the signing keys are "
            f"encrypted with {', '.join(sorted(unknown))}"
        )
    return text


def _tighten(path: Path, mode: int, private: int) -> None:
    if mode & 0o077:
        try:
            path.chmod(mode & private)
        except OSError as exc:
            raise StartupError(f"{path}: cannot make it private ({_problem(exc)})") from None
