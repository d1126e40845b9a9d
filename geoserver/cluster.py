"""The embedded default: a private PostgreSQL + PostGIS cluster in the data directory.

Every command reaches the cluster through the same data directory: the first one that needs it starts it, and the
others find it running through `postmaster.pid`. PostgreSQL refuses to run as root, so when we are root the cluster
runs as the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from layers.errors import ClusterError

SUPERUSER = "geoserver"
DATABASE = "geoserver"
# A Unix socket path longer than this does not fit in sockaddr_un (108 bytes with ".s.PGSQL.NNNNN").
MAX_SOCKET_DIR_BYTES = 90
START_TIMEOUT_S = 60
START_RETRIES = 3

SERVER_SETTINGS = """
# Written by geoserver: a private cluster, reachable on loopback and its own Unix socket only.
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0770
max_connections = 200
shared_buffers = '512MB'
work_mem = '32MB'
maintenance_work_mem = '512MB'
effective_cache_size = '4GB'
random_page_cost = 1.1
jit = off
max_wal_size = '2GB'
logging_collector = off
log_min_messages = warning
timezone = 'UTC'
"""


@dataclass(frozen=True)
class PgBinaries:
    """Where the PostgreSQL server programs of this machine are."""

    bindir: Path

    def __call__(self, name: str) -> str:
        """Full path of one program."""
        return str(self.bindir / name)


def find_pg_binaries() -> PgBinaries:
    """The newest installed PostgreSQL that has PostGIS, else whatever pg_ctl is on PATH."""
    root = Path("/usr/lib/postgresql")
    candidates = sorted(
        (p for p in root.glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if Path(f"/usr/share/postgresql/{bindir.parent.name}/extension/postgis.control").exists():
            return PgBinaries(bindir)
    on_path = shutil.which("pg_ctl")
    if on_path:
        return PgBinaries(Path(on_path).resolve().parent)
    if candidates:
        return PgBinaries(candidates[0])
    raise ClusterError(
        "PostgreSQL is not installed: run scripts/serve (it installs it), "
        "or set GEOSERVER_DATABASE_URL to an existing PostGIS database"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (a killed postmaster nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself hold spaces or parentheses.
    return stat[stat.rfind(")") + 2 :][:1] not in {"Z", "X", ""}


def database_url(socket_dir: Path, port: int) -> str:
    """A libpq URL for the embedded cluster over its Unix socket."""
    return f"postgresql://{SUPERUSER}@/{DATABASE}?host={quote(str(socket_dir), safe='')}&port={port}"


def cluster_owner() -> pwd.struct_passwd | None:
    """The `postgres` user when we are root (PostgreSQL refuses root), else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ClusterError("running as root needs the 'postgres' system user (apt-get install postgresql)") from exc


def run_as_owner(
    args: list[str], *, cwd: Path | None = None, check: bool = True, timeout: float = START_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run one of PostgreSQL's programs as the clusters' owner, in a session of its own; ClusterError if it fails."""
    owner = cluster_owner()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
    if owner is not None:
        env.update(HOME=owner.pw_dir, USER=owner.pw_name, LOGNAME=owner.pw_name)
    result = subprocess.run(  # noqa: S603 - fixed programs, arguments we built
        args,
        env=env,
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        # A new session: Ctrl-C in the terminal reaches us, and we stop the cluster in order.
        start_new_session=True,
        user=owner.pw_uid if owner else None,
        group=owner.pw_gid if owner else None,
        extra_groups=[] if owner else None,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ClusterError(f"{Path(args[0]).name} failed: {' '.join(detail)}")
    return result


class EmbeddedCluster:
    """A PostgreSQL cluster living in `<data_dir>/pg`, started on demand and stopped by whoever started it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pg"
        self.log_file = data_dir / "log" / "postgresql.log"
        self.socket_dir = self._pick_socket_dir(data_dir)
        self._bin: PgBinaries | None = None
        self.started_here = False

    @staticmethod
    def _pick_socket_dir(data_dir: Path) -> Path:
        preferred = data_dir / "run"
        if len(str(preferred).encode()) <= MAX_SOCKET_DIR_BYTES:
            return preferred
        # A deep checkout: keep the socket in /tmp, named after the data directory so clusters never collide.
        import hashlib

        digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"geoserver-{digest}"

    @property
    def bin(self) -> PgBinaries:
        """The PostgreSQL programs, looked up once."""
        if self._bin is None:
            self._bin = find_pg_binaries()
        return self._bin

    # -- running programs as the cluster's owner ------------------------------------------------------------
    @staticmethod
    def _owner() -> pwd.struct_passwd | None:
        return cluster_owner()

    def _run(
        self, args: list[str], *, check: bool = True, timeout: float = START_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return run_as_owner(args, cwd=self.data_dir, check=check, timeout=timeout)

    def _own(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        owner = self._owner()
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    # -- lifecycle -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start and stop between processes sharing this data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "cluster.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def initialised(self) -> bool:
        """True once initdb has run in this data directory."""
        return (self.pgdata / "PG_VERSION").exists()

    def running_port(self) -> int | None:
        """The port of the live postmaster of this data directory, None if it is not running."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None
        if not _alive(pid):
            return None
        status = self._run([self.bin("pg_ctl"), "status", "-D", str(self.pgdata)], check=False)
        return port if status.returncode == 0 else None

    def url(self) -> str:
        """The URL of the running cluster."""
        port = self.running_port()
        if port is None:
            raise ClusterError(f"the cluster in {self.pgdata} is not running")
        return database_url(self.socket_dir, port)

    def _initdb(self) -> None:
        self._own(self.data_dir, 0o755)
        self._own(self.pgdata, 0o700)
        self._run(
            [
                self.bin("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            timeout=180,
        )
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(SERVER_SETTINGS.format(socket_dir=str(self.socket_dir).replace("'", "''")))

    def _pick_port(self) -> int:
        """The port used last time if it is free (stable URLs across restarts), else any free one."""
        remembered = self.data_dir / "cluster.port"
        try:
            port = int(remembered.read_text().strip())
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", port))
        except (OSError, ValueError):
            port = _free_port()
        remembered.write_text(f"{port}\n")
        return port

    def _start(self) -> int:
        self._own(self.socket_dir, 0o770)
        self._own(self.log_file.parent, 0o755)
        port = self._pick_port()
        args = [
            self.bin("pg_ctl"),
            "start",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-l",
            str(self.log_file),
            "-o",
            f"-p {port}",
        ]
        result = self._run(args, check=False, timeout=START_TIMEOUT_S + 10)
        for _ in range(START_RETRIES):
            if result.returncode == 0:
                break
            # After a crash, postmaster.pid may name a process that is now someone else, or a zombie, and the
            # killed postmaster's backends may still be exiting: PostgreSQL then refuses to start. No postmaster
            # of ours is alive (we checked), so the file is stale: remove it, give the backends a moment, retry.
            stale = self.pgdata / "postmaster.pid"
            if stale.exists() and self.running_port() is None:
                stale.unlink()
            time.sleep(1)
            result = self._run(args, check=False, timeout=START_TIMEOUT_S + 10)
        if result.returncode != 0:
            tail = self.log_file.read_text(errors="replace").splitlines()[-5:] if self.log_file.exists() else []
            raise ClusterError(f"PostgreSQL did not start (see {self.log_file}): {' | '.join(tail)}")
        return port

    def ensure_started(self) -> str:
        """Start the cluster unless it is running; create the database on first start. Returns its URL."""
        with self._lock():
            port = self.running_port()
            if port is None:
                if not self.initialised():
                    self._initdb()
                port = self._start()
                self.started_here = True
            url = database_url(self.socket_dir, port)
            self._ensure_database(port)
            return url

    def _ensure_database(self, port: int) -> None:
        psql = [self.bin("psql"), "-X", "-q", "-h", str(self.socket_dir), "-p", str(port), "-U", SUPERUSER]
        query = "SELECT 1 FROM pg_database WHERE datname = 'geoserver'"
        exists = self._run([*psql, "-d", "postgres", "-tAc", query])
        if exists.stdout.strip() != "1":
            self._run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"])

    def stop(self) -> None:
        """Stop the cluster (fast shutdown: open transactions roll back, data is safe)."""
        with self._lock():
            if self.running_port() is not None:
                self._run([self.bin("pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast", "-w"], check=False)
            self.started_here = False

    def wait_ready(self, timeout_s: float = 30) -> None:
        """Block until the postmaster accepts connections."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.running_port()
            if port is not None:
                ready = self._run([self.bin("pg_isready"), "-h", str(self.socket_dir), "-p", str(port)], check=False)
                if ready.returncode == 0:
                    return
            time.sleep(0.2)
        raise ClusterError("PostgreSQL did not become ready in time")


@contextlib.contextmanager
def embedded_cluster(data_dir: Path) -> Iterator[EmbeddedCluster]:
    """Use the data directory's cluster, and stop it afterwards only if we were the ones to start it."""
    cluster = EmbeddedCluster(data_dir)
    cluster.ensure_started()
    try:
        yield cluster
    finally:
        if cluster.started_here:
            cluster.stop()
