"""Start Gridline's four services (and the fake SMS provider) as separate local processes.

Used by ``make demo`` and by the e2e and fault tests, so both run the stack the same way: each
service is ``python -m <service> run`` in its own OS process, configured only through environment
variables, talking to the others only through Kafka.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "routing", "escalation", "notify")
SMS_TEMPLATES = (
    "SMS_900000001:order",
    "SMS_900000002:order,due",
    "SMS_900000003:order,due",
    "SMS_900000004:order,due",
    "SMS_900000005:order,action",
    "SMS_900000006:order",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_key(kid: str) -> str:
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    kafka: str
    database_url: str
    log_dir: Path
    python: str = sys.executable
    extra_env: Mapping[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in (*SERVICES, "fake-sms"):
            self.ports.setdefault(name, free_port())
        self.keys.setdefault("PII_KEY_INTAKE", new_key("i1"))
        self.keys.setdefault("PII_KEY_NOTIFY", new_key("n1"))
        self.keys.setdefault("PII_TRANSIT_KEY", new_key("t1"))
        self.keys.setdefault("RECEIPT_TOKEN", base64.urlsafe_b64encode(os.urandom(18)).decode())
        self.keys.setdefault("STAFF_TOKEN_KEYS", new_key("s1"))

    def env(self, service: str) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "DATABASE_URL": self.database_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.ports[service]),
            "LOG_LEVEL": "INFO",
            "PII_TRANSIT_KEY": self.keys["PII_TRANSIT_KEY"],
            "RELAY_POLL_INTERVAL_S": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        if service == "intake":
            env["PII_KEY"] = self.keys["PII_KEY_INTAKE"]
            env["STAFF_TOKEN_KEYS"] = self.keys["STAFF_TOKEN_KEYS"]
        if service == "routing":  # the dispatcher/admin API takes the same staff tokens
            env["STAFF_TOKEN_KEYS"] = self.keys["STAFF_TOKEN_KEYS"]
        if service == "notify":
            env["PII_KEY"] = self.keys["PII_KEY_NOTIFY"]
            env["SMS_PROVIDER_BASE_URL"] = f"http://127.0.0.1:{self.ports['fake-sms']}"
            env["RECEIPT_TOKEN"] = self.keys["RECEIPT_TOKEN"]
        env.update(self.extra_env)
        return env

    def staff_headers(self, tenant: str, role: str = "platform", unit: str | None = None) -> dict[str, str]:
        """A Bearer token for intake's staff endpoints, signed with this stack's key."""
        from intake.auth import StaffTokens

        token = StaffTokens(self.keys["STAFF_TOKEN_KEYS"]).issue(
            sub=f"stack-{role}",
            tenant=tenant,
            role=role,  # type: ignore[arg-type]
            unit=unit,
        )
        return {"Authorization": f"Bearer {token}"}

    def run_cli(self, service: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", service, *args],
            env=self.env(service),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def migrate(self) -> None:
        for svc in SERVICES:
            r = self.run_cli(svc, "migrate")
            if r.returncode != 0:
                raise RuntimeError(f"{svc} migrate failed:\n{r.stderr[-3000:]}")

    def create_topics(self) -> None:
        r = subprocess.run(
            [self.python, "-m", "gridline_messaging.topics", "create"],
            env=self.env("intake"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"topic creation failed:\n{r.stderr[-3000:]}")

    def start_fake_sms(self) -> Proc:
        cmd = [self.python, "-m", "gridline_fakes", "aliyun-sms", "--port", str(self.ports["fake-sms"])]
        for t in SMS_TEMPLATES:
            cmd += ["--template", t]
        cmd += ["--per-minute", "1000", "--per-hour", "10000", "--per-day", "100000"]
        # The fake pushes a delivery receipt for every accepted send, as Aliyun's SmsReport does.
        receipts = f"http://127.0.0.1:{self.ports['notify']}/v1/receipts/aliyun?token={self.keys['RECEIPT_TOKEN']}"
        cmd += ["--report-url", receipts]
        return self._spawn("fake-sms", cmd, dict(os.environ))

    def start(self, service: str) -> Proc:
        return self._spawn(service, [self.python, "-m", service, "run"], self.env(service))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> Proc:
        log = self.log_dir / f"{name}.log"
        out = open(log, "ab")  # noqa: SIM115 - handed to the child for its whole life
        popen = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, self.ports[name], popen, log)
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        self.start_fake_sms()
        for svc in SERVICES:
            self.start(svc)
        self.wait_ready()

    def wait_ready(self, names: tuple[str, ...] | None = None, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for name in names or tuple(self.procs):
            path = "/_fake/messages" if name == "fake-sms" else "/readyz"
            proc = self.procs[name]
            while True:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{tail(proc.log)}")
                try:
                    with urllib.request.urlopen(proc.url + path, timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout}s:\n{tail(proc.log)}")
                time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.popen.poll() is None:
            os.killpg(proc.popen.pid, sig)
        proc.popen.wait(timeout=60)

    def stop_all(self, timeout: float = 30) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                os.killpg(proc.popen.pid, signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                codes[name] = proc.popen.wait()
        return codes


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
