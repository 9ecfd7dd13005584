"""Photos by multipart, checked by content, stored locally or in S3 (moto's real S3 HTTP server)."""

from __future__ import annotations

import json
import socket
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from intake.app import create_app
from intake.storage import S3Storage

from .conftest import TENANT, Intake, make_settings


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 200 + b"\xff\xd9"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"

REPORT = {
    "tenant": TENANT,
    "category_code": "200102",
    "description": "井盖缺失，行人易跌落",
    "address": "文三路 5 号",
    "phone": "13800138555",
}


async def send(c: httpx.AsyncClient, files: list[tuple[str, bytes, str]], **extra: Any) -> httpx.Response:
    return await c.post(
        "/v1/reports/with-photos",
        data={"report": json.dumps(REPORT | extra, ensure_ascii=False)},
        files=[("photos", f) for f in files],
    )


async def test_report_with_photos_is_stored_and_readable(intake: Intake) -> None:
    p = png()
    r = await send(intake.client, [("a.png", p, "image/png"), ("b.jpg", JPEG, "image/jpeg")])
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["photo_count"] == 2
    h = intake.staff("platform")
    listed = (await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}/attachments", headers=h)).json()
    assert sorted(x["content_type"] for x in listed) == ["image/jpeg", "image/png"]
    png_id = next(x["id"] for x in listed if x["content_type"] == "image/png")
    got = await intake.client.get(f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}/attachments/{png_id}", headers=h)
    assert got.status_code == 200 and got.content == p and got.headers["content-type"] == "image/png"


async def test_type_is_checked_by_content_not_by_name(intake: Intake) -> None:
    r = await send(intake.client, [("photo.jpg", PDF, "image/jpeg")])
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_photo_type"
    assert r.json()["error"]["details"]["detected"] == "application/pdf"
    r = await send(intake.client, [("photo.jpg", b"just some text, not an image at all", "image/jpeg")])
    assert r.status_code == 415


async def test_size_count_and_body_errors(intake: Intake) -> None:
    big = JPEG[:-2] + b"\x00" * 70_000 + b"\xff\xd9"
    r = await send(intake.client, [("big.jpg", big, "image/jpeg")])
    assert r.status_code == 413 and r.json()["error"]["code"] == "photo_too_large"
    r = await send(intake.client, [(f"{i}.png", png(), "image/png") for i in range(4)])
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_photos"
    r = await send(intake.client, [("e.png", b"", "image/png")])
    assert r.status_code == 422
    r = await intake.client.post(
        "/v1/reports/with-photos", data={"report": "{not json"}, files=[("photos", ("a.png", png(), "image/png"))]
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    huge = b"x" * (intake.settings.max_upload_bytes + 1)
    r = await intake.client.post(
        "/v1/reports/with-photos", content=huge, headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = await intake.client.post(
        "/v1/reports", content=b"{" + b" " * 1_000_001 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


async def test_unit_reply_photos_belong_to_the_ticket(intake: Intake) -> None:
    from intake import handlers

    from .test_lifecycle import assigned, feed

    a = await intake.report()
    await feed(intake, handlers.on_dispatch_assigned, assigned(a["ticket_id"]))
    unit = intake.staff("unit", "330106-CGJ")
    url = f"/v1/tenants/{TENANT}/tickets/{a['ticket_id']}"
    await intake.client.post(f"{url}/sign", json={}, headers=unit)
    up = await intake.client.post(
        f"{url}/attachments", files=[("photos", ("after.png", png(), "image/png"))], headers=unit
    )
    assert up.status_code == 201, up.text
    ids = up.json()["ids"]
    bad = await intake.client.post(
        f"{url}/reply", json={"text": "已补装井盖", "attachment_ids": [str(uuid.uuid4())]}, headers=unit
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_attachment"
    ok = await intake.client.post(f"{url}/reply", json={"text": "已补装井盖", "attachment_ids": ids}, headers=unit)
    assert ok.status_code == 200 and ok.json()["status"] == "replied"
    other = intake.staff("unit", "330106-SCJGJ")
    r = await intake.client.post(f"{url}/attachments", files=[("photos", ("x.png", png(), "image/png"))], headers=other)
    assert r.status_code == 404


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_s3_backend_through_the_app(stack: Any, intake_db: str, s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "cn-north-1",
    }.items():
        monkeypatch.setenv(k, v)
    bucket = f"gridline-{uuid.uuid4().hex[:8]}"
    raw = boto3.client("s3", endpoint_url=s3, region_name="us-east-1")
    raw.create_bucket(Bucket=bucket)
    settings = make_settings(
        stack, intake_db, storage_backend="s3", s3_bucket=bucket, s3_endpoint_url=s3, s3_region="us-east-1"
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://intake") as c:
        p = png(3, 3)
        r = await send(c, [("a.png", p, "image/png")])
        assert r.status_code == 201, r.text
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]]
    (key,) = keys
    assert key.startswith(f"intake/{TENANT}/{r.json()['ticket_id']}/") and key.endswith(".png")
    obj = raw.get_object(Bucket=bucket, Key=key)
    assert obj["Body"].read() == p and obj["ContentType"] == "image/png"
    storage = S3Storage(bucket, prefix="intake", endpoint_url=s3, region_name="us-east-1")
    assert await storage.get(key.removeprefix("intake/")) == p
    with pytest.raises(ValueError):
        await storage.put("../escape.png", p, "image/png")
