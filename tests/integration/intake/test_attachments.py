"""12345 attachment URLs fetched from a real local HTTPS file server (its own CA, made here): the order
is saved at once with its attachments pending; the fetcher stores good files (type by content), gives
up on hopeless ones with a reason, retries transient failures with a bound, and never touches the order."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from intake import store
from intake.attachments import Fetcher, FetchSettings
from intake.storage import LocalStorage

from .conftest import TENANT, Intake
from .test_hotline import order, push
from .test_photos import PDF, png

BIG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 9000  # a PNG header, then more than the fetcher's limit


def _cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gridline test file-server CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_pem, cert_pem, key_pem


@dataclass
class FileServer:
    base: str
    ca: Path
    hits: Counter[str]


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    ca, cert, key = _cert(tmp_path_factory.mktemp("tls"))
    hits: Counter[str] = Counter()
    files = {"/ok.png": png(), "/scan.pdf": PDF, "/big.png": BIG, "/page.html": b"<html>not an image</html>"}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            hits[path] += 1
            if path in files:
                # The declared type lies on purpose: only the bytes decide.
                self._send(200, files[path], {"Content-Type": "application/octet-stream"})
            elif path == "/flaky.png":  # two 503s, then the file
                if hits[path] <= 2:
                    self._send(503, b"busy", {"Retry-After": "1"})
                else:
                    self._send(200, png(3, 3))
            elif path == "/slow.png":  # never answers within the fetcher's read timeout
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                time.sleep(1.5)
            elif path == "/moved":
                self._send(302, headers={"Location": "/ok.png"})
            elif path == "/downgrade":
                self._send(302, headers={"Location": "http://127.0.0.1:1/ok.png"})
            else:
                self._send(404, b"not found")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FileServer(f"https://127.0.0.1:{server.server_address[1]}", ca, hits)
    finally:
        server.shutdown()
        server.server_close()


async def rows(intake: Intake, ticket_id: str) -> dict[str, tuple[str, str | None, int]]:
    """last URL segment → (state, last_error, attempts) of a ticket's fetched attachments."""
    a = store.attachment
    async with intake.sessions() as s:
        got = (
            await s.execute(
                select(a.c.source_url, a.c.state, a.c.last_error, a.c.attempts).where(
                    a.c.ticket_id == uuid.UUID(ticket_id)
                )
            )
        ).all()
    return {r.source_url.rsplit("/", 1)[1]: (r.state, r.last_error, r.attempts) for r in got}


async def test_attachment_urls_are_fetched_checked_and_stored_without_holding_the_order(
    intake: Intake, file_server: FileServer
) -> None:
    paths = ["ok.png", "scan.pdf", "missing.jpg", "big.png", "page.html", "flaky.png", "slow.png", "moved", "downgrade"]
    urls = [f"{file_server.base}/{p}" for p in paths] + ["https://127.0.0.1:1/refused.jpg"]
    ext = "HZ-ATT-" + uuid.uuid4().hex[:8]
    r = await push(intake.client, order(ext, attachment_urls=urls + urls[:2]))  # duplicates in the list too
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    before = await rows(intake, tid)
    assert len(before) == len(urls) and {v[0] for v in before.values()} == {"pending"}
    assert file_server.hits == Counter()  # nothing fetched while the platform waited

    fetcher = Fetcher(
        intake.sessions,
        LocalStorage(intake.settings.storage_dir),
        FetchSettings(
            max_bytes=5_000,
            max_attempts=3,
            read_timeout_s=0.5,
            connect_timeout_s=2.0,
            backoff_initial=timedelta(minutes=1),
            batch=50,
            ca_file=file_server.ca,
        ),
    )
    try:
        now = datetime.now(UTC)
        await fetcher.run_once(now)
        first = await rows(intake, tid)
        assert first["ok.png"][:2] == ("stored", None)
        assert first["scan.pdf"][:2] == ("stored", None)
        assert first["moved"][:2] == ("stored", None)  # an HTTPS redirect is followed
        assert first["missing.jpg"][:2] == ("failed", "http_404")
        assert first["big.png"][:2] == ("failed", "too_large")
        assert first["page.html"][:2] == ("failed", "unsupported_type:unknown")
        assert first["downgrade"][:2] == ("failed", "insecure_url")
        assert first["flaky.png"][:2] == ("pending", "http_503")
        assert first["slow.png"][:2] == ("pending", "ReadTimeout")
        assert first["refused.jpg"][:2] == ("pending", "ConnectError")

        # Not due again before the backoff: nothing is fetched twice in a hurry.
        await fetcher.run_once(now + timedelta(seconds=30))
        assert await rows(intake, tid) == first
        await fetcher.run_once(now + timedelta(minutes=2))  # attempt 2: flaky still 503
        await fetcher.run_once(now + timedelta(minutes=10))  # attempt 3: flaky answers; the rest give up
        last = await rows(intake, tid)
        assert last["flaky.png"] == ("stored", None, 3)
        assert last["slow.png"] == ("failed", "gave_up_after_3:ReadTimeout", 3)
        assert last["refused.jpg"][:2] == ("failed", "gave_up_after_3:ConnectError")
        assert file_server.hits["/missing.jpg"] == 1 and file_server.hits["/flaky.png"] == 3
        await fetcher.run_once(now + timedelta(days=1))
        assert await rows(intake, tid) == last  # all settled: nothing more happens to them
    finally:
        await fetcher.close()

    # Units see them like photos; a failed one says why instead of serving nothing.
    platform = intake.staff("platform")
    listed = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}/attachments", headers=platform)).json()
    by_state = Counter(a["state"] for a in listed)
    assert by_state == {"stored": 4, "failed": 6}
    pdf = next(a for a in listed if a["content_type"] == "application/pdf")
    got = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}/attachments/{pdf['id']}", headers=platform)
    assert got.status_code == 200 and got.content == PDF and got.headers["content-type"] == "application/pdf"
    failed = next(a for a in listed if a["error"] == "http_404")
    r = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}/attachments/{failed['id']}", headers=platform)
    assert r.status_code == 409 and r.json()["error"]["code"] == "attachment_not_stored"
    assert r.json()["error"]["details"] == {"state": "failed", "reason": "http_404"}
    assert all("url" not in k for a in listed for k in a)  # platforms put access tokens in URLs

    # The order never moved because of its attachments, and a re-push adds only what is new.
    detail = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{tid}", headers=platform)).json()
    assert detail["status"] == "received"
    again = await push(intake.client, order(ext, attachment_urls=[*urls, f"{file_server.base}/new.png"]))
    assert again.status_code == 200, again.text
    after = await rows(intake, tid)
    assert len(after) == len(urls) + 1 and after["new.png"][0] == "pending"
    assert after["ok.png"][0] == "stored"


async def test_a_claimed_attachment_is_not_claimed_twice(intake: Intake, file_server: FileServer) -> None:
    """Two workers at once: the lease means one fetch per attachment (SKIP LOCKED + next_attempt_at)."""
    ext = "HZ-ATT-" + uuid.uuid4().hex[:8]
    r = await push(intake.client, order(ext, attachment_urls=[f"{file_server.base}/scan.pdf?lease"]))
    assert r.status_code == 201, r.text
    storage = LocalStorage(intake.settings.storage_dir)
    cfg = FetchSettings(batch=50, ca_file=file_server.ca)
    a, b = Fetcher(intake.sessions, storage, cfg), Fetcher(intake.sessions, storage, cfg)
    hits = file_server.hits["/scan.pdf"]
    try:
        now = datetime.now(UTC)
        await asyncio.gather(a.run_once(now), b.run_once(now))
    finally:
        await a.close()
        await b.close()
    assert file_server.hits["/scan.pdf"] == hits + 1
    state = await rows(intake, r.json()["ticket_id"])
    assert [v[:2] for v in state.values()] == [("stored", None)]
