"""What a City runs to scale out, for the tests and the scale benchmark: a streaming replica of the embedded cluster
(pg_basebackup), and Varnish (Debian's package) with the VCL of docs/scaling/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from geoserver.cluster import EmbeddedCluster, cluster_owner, database_url, find_pg_binaries, run_as_owner
from tests.support.cluster import die_with_parent
from tests.support.servers import free_port, stop_process, wait_ready

VCL = Path(__file__).resolve().parents[2] / "docs" / "scaling" / "geoserver.vcl"


def _as_postgres(args: list[str], *, check: bool = True, timeout: float = 120) -> None:
    run_as_owner(args, check=check, timeout=timeout)


class StreamingReplica:
    """A hot standby of `primary`, replaying its WAL `delay_ms` late (`recovery_min_apply_delay`)."""

    def __init__(self, primary: EmbeddedCluster, root: Path, *, delay_ms: int = 0) -> None:
        self.primary, self.root, self.delay_ms = primary, root, delay_ms
        self.pgdata = root / "pg"
        self.socket_dir = root / "run"
        self.port = free_port()
        self.url = database_url(self.socket_dir, self.port)
        self.bin = find_pg_binaries()

    def __enter__(self) -> StreamingReplica:
        owner = cluster_owner()
        for folder, mode in ((self.root, 0o755), (self.socket_dir, 0o775)):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, mode)
            if owner:
                os.chown(folder, owner.pw_uid, owner.pw_gid)
        port = self.primary.running_port()
        _as_postgres(
            [self.bin("pg_basebackup"), "-h", str(self.primary.socket_dir), "-p", str(port), "-U", "geoserver",
             "-D", str(self.pgdata), "-R", "-X", "stream", "-c", "fast"],
            timeout=300,
        )  # fmt: skip
        with open(self.pgdata / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"port = {self.port}\nunix_socket_directories = '{self.socket_dir}'\nlisten_addresses = ''\n"
                f"hot_standby = on\nrecovery_min_apply_delay = '{self.delay_ms}ms'\n"
            )
        self.start()
        return self

    def stop(self) -> None:
        _as_postgres([self.bin("pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast", "-w"], check=False)

    def start(self) -> None:
        _as_postgres([self.bin("pg_ctl"), "start", "-D", str(self.pgdata), "-w", "-l", str(self.root / "log")])

    def __exit__(self, *exc: object) -> None:
        _as_postgres([self.bin("pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "immediate", "-w"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class Varnish:
    """varnishd in the foreground on loopback, with docs/scaling/geoserver.vcl pointed at the given instances."""

    def __init__(self, root: Path, instance_ports: list[int]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        vcl = VCL.read_text()
        for number, port in enumerate(instance_ports, start=1):
            vcl = re.sub(
                rf'(backend instance{number} \{{\s*\.host = "127\.0\.0\.1";\s*\.port = )"\d+"', rf'\g<1>"{port}"', vcl
            )
        if len(instance_ports) == 1:  # VCL refuses a backend that nothing uses: leave instance2 out entirely
            vcl = vcl.replace("    instances.add_backend(instance2);\n", "")
            vcl = re.sub(r"backend instance2 \{.*?\n\}\n", "", vcl, flags=re.S)
        self.vcl = root / "geoserver.vcl"
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        self.vcl.write_text(vcl)

    def __enter__(self) -> Varnish:
        self.process = subprocess.Popen(  # noqa: S603 - Debian's varnishd
            ["varnishd", "-F", "-a", f"127.0.0.1:{self.port}", "-f", str(self.vcl), "-n", str(self.root / "work"),
             "-s", "malloc,128m", "-T", "none"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent,
        )  # fmt: skip
        if not wait_ready(f"{self.url}/health", 60, alive=lambda: self.process.poll() is None):
            errors = self.process.stderr.read().decode()[-2000:] if self.process.poll() is not None else ""  # type: ignore[union-attr]
            self.__exit__()
            raise AssertionError(f"varnishd did not start: {errors}")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process, 20)
        if self.process.stderr is not None:
            self.process.stderr.close()
