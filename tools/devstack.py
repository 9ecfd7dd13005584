#!/usr/bin/env python3
"""Local Kafka and PostgreSQL for development and tests, without Docker.

Runs a real single-node Apache Kafka broker (KRaft, combined broker+controller) assembled
from Maven Central jars, and a throwaway PostgreSQL 15 cluster, as plain processes whose
files live in the repository (both folders git-ignored):

* ``.cache/kafka/libs``: the broker jars, fetched once with Maven (``.complete`` marks them);
  ``.cache/kafka/cds``: AppCDS class archives that halve JVM start after the first run.
* ``.devstack/``: one ``kafka-*`` and ``pg-*`` dir per run, ``state.json`` and ``env``.

Standard library only: it runs with the system ``python3`` before any virtualenv exists.
Background: shared/reference/kafka-test-broker.md.

CLI (progress goes to stderr; ``up`` and ``env`` print ``export`` lines on stdout)::

    python3 tools/devstack.py up [--kafka] [--pg] [--fast]  # default: both
    python3 tools/devstack.py down [--kafka] [--pg]
    python3 tools/devstack.py status | env | restart-kafka | restart-pg

``up`` leaves out a component whose variable (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``)
is already set and records the given value instead: that is how an existing broker or
database replaces ours. ``up`` reuses recorded processes that are alive and answering.

As a module (``tools/`` on ``sys.path``) for test fixtures::

    h = devstack.start_kafka()        # KafkaHandle: .bootstrap, .port, .pid, .data_dir, ...
    devstack.kill_kafka(h)            # SIGKILL by default: a crash
    h = devstack.restart_kafka(h)     # same ports, same data
    devstack.stop_kafka(h)            # and remove its files
    p = devstack.start_postgres()     # PgHandle: .url, .port, .pid, ...
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import pwd
import random
import shlex
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
KAFKA_FALLBACK_VERSION = "4.1.1"  # tried when the version in tools/kafka/pom.xml does not resolve
# Small heap and C1-only JIT: a test broker should start fast, not reach peak throughput.
KAFKA_JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
KAFKA_TOOL_JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
KAFKA_READY_LINE = "Kafka Server started"  # logged by KafkaRaftServer once the broker is unfenced

PG_MAJOR = 15
PG_DB = "gridline"
PG_SUPERUSER = "gridline"
PG_OS_USER = "gridline-pg"  # initdb and postgres refuse to run as root

ENV_KAFKA = "KAFKA_BOOTSTRAP_SERVERS"
ENV_PG = "DATABASE_URL"


class DevstackError(RuntimeError):
    """A component could not be installed, started, queried or stopped."""


def _say(message: str) -> None:
    # stderr, so that `eval "$(python3 tools/devstack.py up)"` sees only the export lines.
    print(f"devstack: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- handles


@dataclass(frozen=True)
class KafkaHandle:
    """A broker started by this module. Restarting returns a new handle (new pid)."""

    root: Path  # repository: tools/kafka and .cache/kafka/libs
    run_dir: Path  # server.properties, broker.log, data/
    port: int
    controller_port: int
    pid: int
    started_in: float  # seconds from launch (or from nothing, on a first start) to ready

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def properties(self) -> Path:
        return self.run_dir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "broker.log"

    def to_json(self) -> dict[str, Any]:
        return _to_json(self) | {"bootstrap": self.bootstrap}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KafkaHandle:
        return cls(
            root=Path(data["root"]),
            run_dir=Path(data["run_dir"]),
            port=int(data["port"]),
            controller_port=int(data["controller_port"]),
            pid=int(data["pid"]),
            started_in=float(data["started_in"]),
        )


@dataclass(frozen=True)
class PgHandle:
    """A PostgreSQL cluster started by this module. Restarting returns a new handle."""

    run_dir: Path  # data/, postgres.log, and usually sock/
    socket_dir: Path
    port: int
    pid: int  # the postmaster
    bin_dir: Path
    os_user: str | None  # when we are root, initdb/pg_ctl/postgres run as this user
    fast: bool
    started_in: float

    @property
    def url(self) -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{PG_DB}"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "postgres.log"

    def to_json(self) -> dict[str, Any]:
        return _to_json(self) | {"url": self.url}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PgHandle:
        return cls(
            run_dir=Path(data["run_dir"]),
            socket_dir=Path(data["socket_dir"]),
            port=int(data["port"]),
            pid=int(data["pid"]),
            bin_dir=Path(data["bin_dir"]),
            os_user=data["os_user"],
            fast=bool(data["fast"]),
            started_in=float(data["started_in"]),
        )


def _to_json(handle: KafkaHandle | PgHandle) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(handle):
        value = getattr(handle, field.name)
        out[field.name] = str(value) if isinstance(value, Path) else value
    return out


# ------------------------------------------------------------------ processes and ports

# Brokers started by this Python process: polling them reaps them, so a dead one
# is not mistaken for a live pid (a zombie still answers kill(pid, 0)).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_PORTS_GIVEN: set[int] = set()


def _pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"  # the state field follows "(comm)"


def _cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None where /proc cannot tell."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")


def _runs(pid: int, needle: str) -> bool:
    """Whether pid is alive and still the process we started (pids get reused)."""
    if pid <= 0 or not _pid_alive(pid):
        return False
    argv = _cmdline(pid)
    return argv is None or any(needle in arg for arg in argv)


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT is usable for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free TCP port on 127.0.0.1, below the kernel's ephemeral range when possible.

    Below it because restart_* binds the same port again later: in between, an ephemeral
    port can be taken by an outgoing connection (even by a client's TCP self-connect while
    it retries the dead server), and the restart would fail with "address in use".
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low > 12000:
        for port in random.sample(range(10000, low), 64):
            if port not in _PORTS_GIVEN and _can_bind(port):
                _PORTS_GIVEN.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _PORTS_GIVEN.add(port)
    return port


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between devstack processes (concurrent `up`s, parallel fixtures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


def _output_tail(result: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    return "\n".join(((result.stdout or "") + (result.stderr or "")).splitlines()[-lines:])


def _workdir(root: Path, workdir: Path | None) -> Path:
    path = workdir if workdir is not None else root / ".devstack"
    if not path.is_dir():
        path.mkdir(parents=True)
        # World-traversable, because as root PostgreSQL runs as another user inside it.
        path.chmod(0o755)
    return path


# ----------------------------------------------------------------------- installation


def _apt_install(packages: Sequence[str]) -> None:
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    _say(f"installing {' '.join(packages)} with apt-get")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DevstackError(f"{shlex.join(cmd)} failed:\n{_output_tail(result)}")


def _can_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def _require_java_and_maven(need_maven: bool) -> str:
    missing = _java() is None or (need_maven and shutil.which("mvn") is None)
    if missing and _can_apt():
        _apt_install(["openjdk-17-jre-headless", "maven"])
    java = _java()
    if java is None or (need_maven and shutil.which("mvn") is None):
        raise DevstackError(
            "Kafka needs Java 17+ and, for the first download, Maven: install "
            "openjdk-17-jre-headless and maven (as root devstack does it with apt-get)"
        )
    return java


def kafka_libs_dir(root: Path = REPO_ROOT) -> Path:
    return root / ".cache" / "kafka" / "libs"


def _pom_digest(root: Path) -> str:
    return hashlib.sha256((root / "tools" / "kafka" / "pom.xml").read_bytes()).hexdigest()


def _libs_marker(libs: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((libs / ".complete").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_kafka_libs(root: Path = REPO_ROOT) -> Path:
    """Fill .cache/kafka/libs from tools/kafka/pom.xml once; later calls run no Maven at all.

    The marker records the pom's hash, so editing the pom (e.g. a version bump) refetches.
    """
    libs = kafka_libs_dir(root)
    digest = _pom_digest(root)

    def complete() -> bool:
        marker = _libs_marker(libs)
        return marker is not None and marker.get("pom_sha256") == digest

    if complete():
        return libs
    with _locked(libs.parent / ".lock"):
        if complete():  # another process fetched while we waited
            return libs
        _require_java_and_maven(need_maven=True)
        started = time.monotonic()
        # Fetch next to libs/ and rename, so an interrupted download never looks complete.
        tmp = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=libs.parent))
        try:
            version = _fetch_kafka_jars(root, tmp)
            (tmp / ".complete").write_text(json.dumps({"kafka_version": version, "pom_sha256": digest}) + "\n")
            if libs.exists():
                shutil.rmtree(libs)  # jars of another version would shadow the new ones
            tmp.rename(libs)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        jars = len(list(libs.glob("*.jar")))
        _say(f"fetched {jars} jars for Kafka {version} in {time.monotonic() - started:.1f} s")
    return libs


def _fetch_kafka_jars(root: Path, out: Path) -> str:
    base = [
        "mvn", "-B", "-q", "-Dstyle.color=never", "-f", str(root / "tools" / "kafka" / "pom.xml"),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime",
        # Absolute: Maven resolves a relative outputDirectory against the pom's folder.
        f"-DoutputDirectory={out.resolve()}",
    ]  # fmt: skip
    failures = []
    for extra in ([], [f"-Dkafka.version={KAFKA_FALLBACK_VERSION}"]):
        _say("fetching Kafka jars with Maven" + (f" ({extra[0]})" if extra else ""))
        result = subprocess.run(base + extra, capture_output=True, text=True, cwd=root)
        broker_jars = sorted(out.glob("kafka_2.13-*.jar"))
        if result.returncode == 0 and broker_jars:
            return broker_jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar")
        failures.append(_output_tail(result, 15))
        for jar in out.iterdir():
            jar.unlink()
    raise DevstackError("mvn could not fetch the Kafka jars:\n" + "\n---\n".join(failures))


# ------------------------------------------------------------------------------ Kafka


def _kafka_java(root: Path, opts: Sequence[str], main: str, dump_to: Path) -> list[str]:
    """The java command line for main; without an AppCDS archive yet, the JVM writes one to dump_to."""
    java = _require_java_and_maven(need_maven=False)
    archive = _cds_archive(root, java, main, opts)
    cds_opts = []
    if archive is not None and archive.is_file():
        cds_opts = [f"-XX:SharedArchiveFile={archive}"]
    elif archive is not None:
        dump_to.unlink(missing_ok=True)
        cds_opts = [f"-XX:ArchiveClassesAtExit={dump_to}"]
    log4j = root / "tools" / "kafka" / "log4j2.properties"
    # The launcher expands "libs/*" itself; no shell is involved.
    return [java, *opts, *cds_opts, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{kafka_libs_dir(root)}/*", main]


def _cds_archive(root: Path, java: str | None, main: str, opts: Sequence[str]) -> Path | None:
    """Where the AppCDS archive for main lives (existing or not); None if AppCDS is not used.

    Archived classes roughly halve JVM start on 2 cores (broker 3 s -> 1.5 s, StorageTool
    1.6 s -> 0.9 s). The name hashes the JVM build, the options and the jar download, so a
    stale archive is never offered (the JVM would only warn and run without it).
    """
    if java is None or os.environ.get("DEVSTACK_NO_CDS"):
        return None
    jvm_dir = Path(java).resolve().parent.parent / "lib" / "server"
    if not (jvm_dir / "classes.jsa").is_file():  # dynamic archives extend the JDK's base archive
        return None
    identity = [str(jvm_dir), main, *opts]
    for path in (jvm_dir / "libjvm.so", jvm_dir / "classes.jsa", kafka_libs_dir(root) / ".complete"):
        with contextlib.suppress(OSError):
            stat = path.stat()
            identity += [str(stat.st_mtime_ns), str(stat.st_size)]
    key = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:16]
    return root / ".cache" / "kafka" / "cds" / f"{main.rpartition('.')[2]}-{key}.jsa"


def _adopt_archive(dumped: Path, archive: Path | None) -> None:
    """Move a JVM's exit-time class archive into the cache, replacing stale ones of its kind."""
    if archive is None or not dumped.is_file() or dumped.stat().st_size == 0:
        dumped.unlink(missing_ok=True)
        return
    archive.parent.mkdir(parents=True, exist_ok=True)
    kind = archive.name.rpartition("-")[0]
    for old in archive.parent.glob(f"{kind}-*.jsa"):
        old.unlink(missing_ok=True)
    os.replace(dumped, archive)  # atomic: concurrent runs each adopt a complete archive


def _cluster_id() -> str:
    while True:
        # Kafka's own random-uuid format. A leading "-" would read as an option flag.
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def start_kafka(root: Path = REPO_ROOT, *, workdir: Path | None = None, timeout: float = 90.0) -> KafkaHandle:
    """Start a fresh broker in a new run dir under workdir (default .devstack/)."""
    started = time.monotonic()
    root = root.resolve()  # the JVM runs in the run dir: a relative classpath would not resolve
    ensure_kafka_libs(root)
    run_dir = Path(tempfile.mkdtemp(prefix="kafka-", dir=_workdir(root, workdir)))
    try:
        port, controller_port = free_port(), free_port()
        template = (root / "tools" / "kafka" / "server.properties.tmpl").read_text()
        props = string.Template(template).substitute(BPORT=port, CPORT=controller_port, DATA=run_dir / "data")
        handle = KafkaHandle(root, run_dir, port, controller_port, pid=0, started_in=0.0)
        handle.properties.write_text(props)
        fetched_in = time.monotonic() - started
        dump_to = run_dir / "cds-storage-tool.jsa"
        cmd = _kafka_java(root, KAFKA_TOOL_JVM_OPTS, "kafka.tools.StorageTool", dump_to)
        cmd += ["format", f"--cluster-id={_cluster_id()}", "-c", str(handle.properties)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise DevstackError(f"formatting Kafka storage failed:\n{_output_tail(result)}")
        _adopt_archive(dump_to, _cds_archive(root, _java(), "kafka.tools.StorageTool", KAFKA_TOOL_JVM_OPTS))
        formatted_in = time.monotonic() - started - fetched_in
        handle = _launch_kafka(handle, timeout)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    total = time.monotonic() - started
    fetch = f"jar download {fetched_in:.1f} s, " if fetched_in > 1 else ""
    _say(f"Kafka started in {total:.1f} s ({fetch}format {formatted_in:.1f} s, launch {handle.started_in:.1f} s)")
    return dataclasses.replace(handle, started_in=total)


def _launch_kafka(handle: KafkaHandle, timeout: float) -> KafkaHandle:
    """Run kafka.Kafka on handle's files and wait until it serves requests."""
    offset = handle.log_path.stat().st_size if handle.log_path.exists() else 0
    cmd = _kafka_java(handle.root, KAFKA_JVM_OPTS, "kafka.Kafka", handle.run_dir / "cds-broker.jsa")
    started = time.monotonic()
    with handle.log_path.open("ab") as log:
        # Own session: signals go to the broker's process group, never to ours.
        proc = subprocess.Popen(
            [*cmd, str(handle.properties)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=handle.run_dir, start_new_session=True,
        )  # fmt: skip
    _CHILDREN[proc.pid] = proc
    handle = dataclasses.replace(handle, pid=proc.pid)
    seen = ""
    with handle.log_path.open("rb") as log:
        log.seek(offset)
        while True:
            # Keep a short carry-over so a line split across two reads is still found.
            seen = seen[-200:] + log.read().decode(errors="replace")
            if KAFKA_READY_LINE in seen and kafka_answering(handle.bootstrap):
                break
            if proc.poll() is not None:
                raise DevstackError(
                    f"Kafka exited with code {proc.returncode}; {handle.log_path} ends:\n" + _tail(handle.log_path)
                )
            if time.monotonic() - started > timeout:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                raise DevstackError(
                    f"Kafka was not ready after {timeout:.0f} s; {handle.log_path} ends:\n" + _tail(handle.log_path)
                )
            time.sleep(0.1)
    elapsed = time.monotonic() - started
    _say(f"Kafka ready at {handle.bootstrap} in {elapsed:.1f} s (pid {proc.pid}, {handle.log_path})")
    return dataclasses.replace(handle, started_in=elapsed)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def kafka_running(handle: KafkaHandle) -> bool:
    return _runs(handle.pid, str(handle.properties))


def kill_kafka(handle: KafkaHandle, sig: int = signal.SIGKILL) -> None:
    """Send sig to the broker's process group: SIGKILL for a crash, SIGSTOP/SIGCONT to freeze.

    For SIGKILL, returns once the process is gone; restart_kafka brings it back.
    """
    if not kafka_running(handle):
        return
    _signal_group(handle.pid, sig)
    if sig == signal.SIGKILL and not _wait_dead(handle.pid, 10):
        raise DevstackError(f"Kafka pid {handle.pid} survived SIGKILL")


def stop_kafka(handle: KafkaHandle, *, remove_data: bool = True, timeout: float = 20.0) -> None:
    """Shut the broker down (SIGTERM, then SIGKILL after timeout) and remove its files."""
    clean = True
    if kafka_running(handle):
        _signal_group(handle.pid, signal.SIGTERM)
        _signal_group(handle.pid, signal.SIGCONT)  # a SIGSTOPped JVM would never see SIGTERM
        if not _wait_dead(handle.pid, timeout):
            _say(f"Kafka pid {handle.pid} ignored SIGTERM for {timeout:.0f} s; killing it")
            kill_kafka(handle, signal.SIGKILL)
            clean = False
    _CHILDREN.pop(handle.pid, None)
    # A broker started without an archive wrote one as it exited (half-written if we killed it).
    dumped = handle.run_dir / "cds-broker.jsa"
    if dumped.exists():
        archive = _cds_archive(handle.root, _java(), "kafka.Kafka", KAFKA_JVM_OPTS) if clean else None
        _adopt_archive(dumped, archive)
    if remove_data:
        shutil.rmtree(handle.run_dir, ignore_errors=True)


def restart_kafka(handle: KafkaHandle, *, timeout: float = 90.0) -> KafkaHandle:
    """Stop the broker if it runs, then start it on the same ports and the same data."""
    stop_kafka(handle, remove_data=False)
    return _launch_kafka(handle, timeout)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk
    return bytes(buf)


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(f"//{address}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def kafka_answering(bootstrap: str, timeout: float = 2.0) -> bool:
    """Whether the first bootstrap server answers an ApiVersions v0 request without error."""
    host, port = _host_port(bootstrap.split(",")[0].strip(), 9092)
    client_id = b"devstack"
    # Request header v1 (api_key 18 = ApiVersions, version 0, correlation id 7, client id).
    request = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, size)
    except (OSError, struct.error):
        return False
    correlation_id, error_code = struct.unpack(">ih", response[:6])
    return bool(correlation_id == 7 and error_code == 0)


# ------------------------------------------------------------------------- PostgreSQL


def _pg_major(bin_dir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        return int(out.split(")")[1].split()[0].split(".")[0])  # "postgres (PostgreSQL) 15.18 ..."
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        return None


def find_pg_bin() -> Path:
    """The bin dir holding initdb, pg_ctl and postgres of PostgreSQL 15; apt-installed as root."""
    for attempt in range(2):
        candidates = [Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")]
        if initdb := shutil.which("initdb"):
            candidates.append(Path(initdb).resolve().parent)
        for bin_dir in candidates:
            tools = ("initdb", "pg_ctl", "postgres")
            if all((bin_dir / t).is_file() for t in tools) and _pg_major(bin_dir) == PG_MAJOR:
                return bin_dir
        if attempt == 0 and _can_apt():
            # Debian's package also creates and starts its own "main" cluster on 5432;
            # we leave it alone and never use it.
            _apt_install([f"postgresql-{PG_MAJOR}"])
    raise DevstackError(
        f"PostgreSQL {PG_MAJOR} (initdb, pg_ctl, postgres) not found on PATH or in "
        f"/usr/lib/postgresql/{PG_MAJOR}/bin: install postgresql-{PG_MAJOR}"
    )


def _pg_os_user() -> str | None:
    """None when we are not root; else the unprivileged user that runs the cluster."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--user-group", "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_OS_USER]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        with contextlib.suppress(KeyError):  # a concurrent devstack may have just created it
            pwd.getpwnam(PG_OS_USER)
            return PG_OS_USER
        raise DevstackError(f"could not create user {PG_OS_USER}:\n{_output_tail(result)}") from None
    return PG_OS_USER


def _as_pg_user(cmd: Sequence[str], user: str | None) -> list[str]:
    if user is None:
        return list(cmd)
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *cmd]


def _pg_base_dir(root: Path, workdir: Path | None, user: str | None) -> Path:
    base = _workdir(root, workdir)
    if user is None:
        return base
    probe = _as_pg_user(["test", "-x", str(base)], user)
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return base
    # A parent such as /root is closed to other users: use the temp dir instead.
    fallback = Path(tempfile.gettempdir()) / "gridline-devstack-pg"
    fallback.mkdir(mode=0o755, exist_ok=True)
    fallback.chmod(0o755)
    return fallback


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


def _conf_quote(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def start_postgres(
    root: Path = REPO_ROOT,
    *,
    workdir: Path | None = None,
    fast: bool = False,
    timeout: float = 60.0,
) -> PgHandle:
    """initdb a fresh cluster in a new run dir, start it and create the gridline database.

    fast=True turns fsync and full_page_writes off. That loses data only if the OS itself
    crashes, not when processes are killed, but fault tests may want the real thing.
    """
    started = time.monotonic()
    bin_dir = find_pg_bin()
    user = _pg_os_user()
    run_dir = Path(tempfile.mkdtemp(prefix="pg-", dir=_pg_base_dir(root, workdir, user)))
    handle: PgHandle | None = None
    try:
        socket_dir = run_dir / "sock"
        if len(str(socket_dir)) > 80:  # a Unix socket path must fit in 107 bytes
            socket_dir = Path(tempfile.mkdtemp(prefix="gridline-pg-sock-"))
        socket_dir.mkdir(exist_ok=True)
        for path in (run_dir, socket_dir):
            _chown(path, user)
        data_dir = run_dir / "data"
        _initdb(bin_dir, data_dir, user)
        port = free_port()
        settings: dict[str, object] = {
            "listen_addresses": "127.0.0.1",
            "port": port,
            "unix_socket_directories": socket_dir,
            "max_connections": 200,
            "shared_buffers": "128MB",
            "fsync": "off" if fast else "on",
            "full_page_writes": "off" if fast else "on",
        }
        # Appended, so these win over initdb's defaults; pg_ctl start needs no -o then,
        # and restarts come back with the same port and socket.
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# --- tools/devstack.py ---\n")
            conf.writelines(f"{key} = {_conf_quote(value)}\n" for key, value in settings.items())
        handle = PgHandle(run_dir, socket_dir, port, 0, bin_dir, user, fast, 0.0)
        handle = _launch_postgres(handle, timeout)
        pg_query(f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/postgres", f"CREATE DATABASE {PG_DB}")
    except BaseException:
        if handle is not None:
            stop_postgres(handle)
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    total = time.monotonic() - started
    _say(f"PostgreSQL started in {total:.1f} s (initdb included)")
    return dataclasses.replace(handle, started_in=total)


def _initdb(bin_dir: Path, data_dir: Path, user: str | None) -> None:
    base = [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", PG_SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--no-sync", "--no-instructions"]  # fmt: skip
    # --no-sync: durability of a throwaway cluster's initial files only matters if the OS crashes.
    errors = []
    for locale in ("--locale=C.UTF-8", "--no-locale"):
        result = subprocess.run(_as_pg_user([*base, locale], user), capture_output=True, text=True, cwd=data_dir.parent)
        if result.returncode == 0:
            return
        errors.append(_output_tail(result, 15))
        shutil.rmtree(data_dir, ignore_errors=True)
    raise DevstackError("initdb failed:\n" + "\n---\n".join(errors))


def _pg_ctl(handle: PgHandle, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    cmd = [str(handle.bin_dir / "pg_ctl"), "-D", str(handle.data_dir), "-s", *args]
    return subprocess.run(
        _as_pg_user(cmd, handle.os_user), capture_output=True, text=True,
        cwd=handle.run_dir, timeout=timeout + 15,
    )  # fmt: skip


def _launch_postgres(handle: PgHandle, timeout: float) -> PgHandle:
    started = time.monotonic()
    for lock in (handle.data_dir / "postmaster.pid", handle.socket_dir / f".s.PGSQL.{handle.port}.lock"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if not _runs(int(lock.read_text().split()[0]), str(handle.data_dir)):
                # Left by a killed postmaster. PostgreSQL would take its pid for a live server
                # while it is an unreaped zombie (pid 1 of some containers reaps late) and refuse to start.
                lock.unlink()
    wait = ["-w", "-t", str(max(1, int(timeout)))]
    while True:
        result = _pg_ctl(handle, "-l", str(handle.log_path), *wait, "start", timeout=timeout)
        if result.returncode == 0:
            break
        # After a SIGKILL, backends that outlived the postmaster for a moment still hold
        # the old shared memory, and the new postmaster refuses to start until they exit.
        busy = "pre-existing shared memory block" in _tail(handle.log_path, 5)
        if not busy or time.monotonic() - started > timeout:
            raise DevstackError(
                f"pg_ctl start failed:\n{_output_tail(result)}\n{handle.log_path} ends:\n" + _tail(handle.log_path)
            )
        time.sleep(0.5)
    pid = int((handle.data_dir / "postmaster.pid").read_text().split()[0])
    handle = dataclasses.replace(handle, pid=pid)
    elapsed = time.monotonic() - started
    _say(f"PostgreSQL ready at 127.0.0.1:{handle.port} in {elapsed:.1f} s (pid {pid}, {handle.log_path})")
    return dataclasses.replace(handle, started_in=elapsed)


def postgres_running(handle: PgHandle) -> bool:
    return _runs(handle.pid, str(handle.data_dir))


def kill_postgres(handle: PgHandle, sig: int = signal.SIGKILL) -> None:
    """Signal the postmaster, and for SIGKILL/SIGSTOP/SIGCONT all its children too.

    SIGKILL of the whole cluster is a crash (restart_postgres then runs crash recovery);
    SIGTERM/SIGINT/SIGQUIT are PostgreSQL's own smart/fast/immediate shutdowns.
    """
    if not postgres_running(handle):
        return
    whole_cluster = sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT)
    children = _children_of(handle.pid) if whole_cluster else []
    # Postmaster first, so it cannot notice dead children and start new ones.
    for pid in [handle.pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    if sig == signal.SIGKILL:
        for pid in [handle.pid, *children]:
            _wait_dead(pid, 10)


def stop_postgres(handle: PgHandle, *, remove_data: bool = True, timeout: float = 30.0) -> None:
    """pg_ctl stop -m fast (SIGKILL if that fails), then remove the cluster's files."""
    if postgres_running(handle):
        kill_postgres(handle, signal.SIGCONT)  # pg_ctl stop would wait forever on a frozen cluster
        result = _pg_ctl(handle, "-m", "fast", "-w", "-t", str(int(timeout)), "stop", timeout=timeout)
        if result.returncode != 0 and postgres_running(handle):
            _say(f"pg_ctl stop failed ({_output_tail(result, 3)}); killing pid {handle.pid}")
            kill_postgres(handle, signal.SIGKILL)
    if remove_data:
        shutil.rmtree(handle.run_dir, ignore_errors=True)
        if handle.socket_dir.parent != handle.run_dir:
            shutil.rmtree(handle.socket_dir, ignore_errors=True)


def restart_postgres(handle: PgHandle, *, timeout: float = 60.0) -> PgHandle:
    """Stop the cluster if it runs, then start it on the same port and the same data."""
    stop_postgres(handle, remove_data=False)
    return _launch_postgres(handle, timeout)


class PgAuthRequired(DevstackError):
    """The server asked for a password: it is up, but this client cannot log in."""


def pg_query(url: str, sql: str, *, timeout: float = 10.0) -> list[tuple[str | None, ...]]:
    """Run sql (simple query protocol, trust auth) and return the last result's rows as text.

    Just enough of the wire protocol to check and prepare a database without psql or a driver.
    """
    parts = urlsplit(url)
    user = unquote(parts.username or PG_SUPERUSER)
    database = unquote(parts.path.lstrip("/")) or user
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in
                      (("user", user), ("database", database))) + b"\0"  # fmt: skip
    rows: list[tuple[str | None, ...]] = []
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=timeout) as sock:
        sock.sendall(struct.pack(">ii", 8 + len(params), 196608) + params)  # protocol 3.0
        _pg_read_until_ready(sock, startup=True)
        body = sql.encode() + b"\0"
        sock.sendall(b"Q" + struct.pack(">i", 4 + len(body)) + body)
        rows = _pg_read_until_ready(sock, startup=False)
        sock.sendall(b"X" + struct.pack(">i", 4))
    return rows


def _pg_read_until_ready(sock: socket.socket, *, startup: bool) -> list[tuple[str | None, ...]]:
    rows: list[tuple[str | None, ...]] = []
    error = None
    while True:
        kind = _recv_exact(sock, 1)
        (length,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, length - 4)
        if kind == b"R" and struct.unpack(">i", payload[:4])[0] != 0:
            raise PgAuthRequired("the server asks for a password")
        if kind == b"T":  # a new result set begins
            rows = []
        elif kind == b"D":
            (count,) = struct.unpack(">h", payload[:2])
            pos, row = 2, []
            for _ in range(count):
                (size,) = struct.unpack(">i", payload[pos : pos + 4])
                pos += 4
                row.append(None if size < 0 else payload[pos : pos + size].decode())
                pos += max(size, 0)
            rows.append(tuple(row))
        elif kind == b"E":
            fields = {f[:1]: f[1:].decode(errors="replace") for f in payload.split(b"\0") if f}
            error = f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '')}: {fields.get(b'M', '')}"
            if startup:  # the server closes the connection after a startup error
                raise DevstackError(f"PostgreSQL: {error}")
        elif kind == b"Z":
            if error:
                raise DevstackError(f"PostgreSQL: {error}")
            return rows


def postgres_answering(url: str, timeout: float = 2.0) -> bool:
    """Whether the server behind a libpq-style URL accepts a session (or asks for a password)."""
    try:
        pg_query(url, "SELECT 1", timeout=timeout)
    except PgAuthRequired:
        return True
    except (OSError, DevstackError, struct.error):
        return False
    return True


# ----------------------------------------------------------------------- stack state


def _state_path(root: Path, workdir: Path | None) -> Path:
    return (workdir if workdir is not None else root / ".devstack") / "state.json"


def read_state(root: Path = REPO_ROOT, *, workdir: Path | None = None) -> dict[str, Any]:
    """state.json: {"kafka"|"postgres": {"external": bool, "value": str, "handle": {...}|None}}."""
    try:
        data = json.loads(_state_path(root, workdir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def env_lines(state: Mapping[str, Any]) -> list[str]:
    names = {"kafka": ENV_KAFKA, "postgres": ENV_PG}
    return [f"export {names[key]}={shlex.quote(state[key]['value'])}" for key in names if key in state]


def _write_state(root: Path, workdir: Path | None, state: Mapping[str, Any]) -> None:
    path = _state_path(root, workdir)
    env_path = path.with_name("env")
    if not state:
        path.unlink(missing_ok=True)
        env_path.unlink(missing_ok=True)
        return
    for target, text in ((path, json.dumps(state, indent=2) + "\n"),
                         (env_path, "\n".join(env_lines(state)) + "\n")):  # fmt: skip
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(target)  # readers never see half a file


def _record(handle: KafkaHandle | PgHandle) -> dict[str, Any]:
    value = handle.bootstrap if isinstance(handle, KafkaHandle) else handle.url
    return {"external": False, "value": value, "handle": handle.to_json()}


def _up_kafka(
    root: Path, workdir: Path | None, previous: Mapping[str, Any] | None, given: str | None
) -> dict[str, Any]:
    ours = KafkaHandle.from_json(previous["handle"]) if previous and previous["handle"] else None
    if given and not (ours and given == ours.bootstrap):
        if ours:
            _say(f"{ENV_KAFKA} is set: stopping our broker at {ours.bootstrap}")
            stop_kafka(ours)
        _say(f"using Kafka from {ENV_KAFKA}={given}")
        return {"external": True, "value": given, "handle": None}
    if ours and kafka_running(ours) and kafka_answering(ours.bootstrap):
        _say(f"Kafka already up at {ours.bootstrap} (pid {ours.pid})")
        return _record(ours)
    if ours:
        _say(f"recorded Kafka at {ours.bootstrap} is not answering; starting a new one")
        stop_kafka(ours)
    return _record(start_kafka(root, workdir=workdir))


def _up_postgres(
    root: Path,
    workdir: Path | None,
    previous: Mapping[str, Any] | None,
    given: str | None,
    fast: bool,
) -> dict[str, Any]:
    ours = PgHandle.from_json(previous["handle"]) if previous and previous["handle"] else None
    if given and not (ours and given == ours.url):
        if ours:
            _say(f"{ENV_PG} is set: stopping our PostgreSQL at {ours.url}")
            stop_postgres(ours)
        _say(f"using PostgreSQL from {ENV_PG}")
        return {"external": True, "value": given, "handle": None}
    if ours and postgres_running(ours) and postgres_answering(ours.url):
        _say(f"PostgreSQL already up at {ours.url} (pid {ours.pid})")
        return _record(ours)
    if ours:
        _say(f"recorded PostgreSQL at {ours.url} is not answering; starting a new one")
        stop_postgres(ours)
    return _record(start_postgres(root, workdir=workdir, fast=fast))


def up(
    root: Path = REPO_ROOT,
    *,
    kafka: bool = True,
    pg: bool = True,
    fast: bool = False,
    workdir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Start what is neither running nor given in environ; write state.json and env."""
    env = os.environ if environ is None else environ
    with _locked(_workdir(root, workdir) / ".lock"):
        state = read_state(root, workdir=workdir)
        jobs: dict[str, Callable[[], dict[str, Any]]] = {}
        if kafka:
            jobs["kafka"] = lambda: _up_kafka(root, workdir, state.get("kafka"), env.get(ENV_KAFKA))
        if pg:
            jobs["postgres"] = lambda: _up_postgres(root, workdir, state.get("postgres"), env.get(ENV_PG), fast)
        # In parallel: the JVM start dominates, and PostgreSQL fits inside it.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = {key: pool.submit(job) for key, job in jobs.items()}
        errors = []
        for key, future in futures.items():
            try:
                state[key] = future.result()
            except Exception as exc:  # record what did start, then report what did not
                state.pop(key, None)
                errors.append(f"{key}: {exc}")
        _write_state(root, workdir, state)
    if errors:
        raise DevstackError("\n".join(errors))
    return state


def down(root: Path = REPO_ROOT, *, kafka: bool = True, pg: bool = True, workdir: Path | None = None) -> None:
    """Stop what up started and remove its files; external components are only forgotten."""
    with _locked(_workdir(root, workdir) / ".lock"):
        state = read_state(root, workdir=workdir)
        if kafka and (entry := state.pop("kafka", None)) and entry["handle"]:
            handle = KafkaHandle.from_json(entry["handle"])
            stop_kafka(handle)
            _say(f"Kafka at {handle.bootstrap} stopped")
        if pg and (entry := state.pop("postgres", None)) and entry["handle"]:
            pg_handle = PgHandle.from_json(entry["handle"])
            stop_postgres(pg_handle)
            _say(f"PostgreSQL at 127.0.0.1:{pg_handle.port} stopped")
        _write_state(root, workdir, state)


def _restart(root: Path, workdir: Path | None, key: str) -> dict[str, Any]:
    with _locked(_workdir(root, workdir) / ".lock"):
        state = read_state(root, workdir=workdir)
        entry = state.get(key)
        if not entry or not entry["handle"]:
            raise DevstackError(f"no {key} started by devstack is recorded; run `up` first")
        if key == "kafka":
            state[key] = _record(restart_kafka(KafkaHandle.from_json(entry["handle"])))
        else:
            state[key] = _record(restart_postgres(PgHandle.from_json(entry["handle"])))
        _write_state(root, workdir, state)
    return state


def status(root: Path = REPO_ROOT, *, workdir: Path | None = None) -> tuple[list[str], bool]:
    """Human-readable lines, and whether every recorded component answers."""
    state = read_state(root, workdir=workdir)
    if not state:
        return ["nothing is up"], False
    lines, healthy = [], True
    for key, probe in (("kafka", kafka_answering), ("postgres", postgres_answering)):
        entry = state.get(key)
        if not entry:
            continue
        answering = probe(entry["value"])
        healthy &= answering
        where = "external"
        if entry["handle"]:
            handle: KafkaHandle | PgHandle = (
                KafkaHandle.from_json(entry["handle"]) if key == "kafka" else PgHandle.from_json(entry["handle"])
            )
            alive = kafka_running(handle) if isinstance(handle, KafkaHandle) else postgres_running(handle)
            where = f"pid {handle.pid} {'alive' if alive else 'DEAD'}, {handle.run_dir}"
        lines.append(f"{key:<9} {'answering' if answering else 'NOT ANSWERING':<13} {entry['value']}  ({where})")
    return lines, healthy


# -------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where runs and state live (default: <repo>/.devstack)")
    commands = parser.add_subparsers(dest="command", required=True)
    up_cmd = commands.add_parser("up", help="start Kafka and/or PostgreSQL, print export lines")
    down_cmd = commands.add_parser("down", help="stop them and remove their data")
    for sub in (up_cmd, down_cmd):
        sub.add_argument("--kafka", action="store_true", help="only Kafka (with --pg: both)")
        sub.add_argument("--pg", action="store_true", help="only PostgreSQL (with --kafka: both)")
    up_cmd.add_argument("--fast", action="store_true", help="PostgreSQL with fsync=off (unsafe only on OS crash)")
    commands.add_parser("status", help="what runs and whether it answers")
    commands.add_parser("env", help="print the export lines of the running stack")
    commands.add_parser("restart-kafka", help="restart the broker: same port, same data")
    commands.add_parser("restart-pg", help="restart PostgreSQL: same port, same data")
    args = parser.parse_args(argv)
    workdir: Path | None = args.workdir.resolve() if args.workdir else None

    try:
        if args.command in ("up", "down"):
            both = not (args.kafka or args.pg)
            kafka, pg = args.kafka or both, args.pg or both
            if args.command == "down":
                down(kafka=kafka, pg=pg, workdir=workdir)
                return 0
            state = up(kafka=kafka, pg=pg, fast=args.fast, workdir=workdir)
            print("\n".join(env_lines(state)))
            _say(f"written to {_state_path(REPO_ROOT, workdir).with_name('env')}")
        elif args.command == "status":
            lines, healthy = status(workdir=workdir)
            print("\n".join(lines))
            return 0 if healthy else 1
        elif args.command == "env":
            lines = env_lines(read_state(workdir=workdir))
            if not lines:
                _say("nothing is up; run `python3 tools/devstack.py up`")
                return 1
            print("\n".join(lines))
        else:
            state = _restart(REPO_ROOT, workdir, "kafka" if args.command == "restart-kafka" else "postgres")
            print("\n".join(env_lines(state)))
    except DevstackError as exc:
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
