"""Receipt formats as the providers push them (reference §1.8, §2.6) → normalised receipts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notify import receipts

KEY = b"k" * 32


def test_aliyun_sms_report() -> None:
    (r,) = receipts.parse_aliyun(
        [
            {
                "phone_number": "13811112222",
                "send_time": "2017-01-01 00:00:00",
                "report_time": "2017-01-01 08:00:01",
                "success": True,
                "err_code": "DELIVERED",
                "err_msg": "用户接收成功",
                "sms_size": "1",
                "biz_id": "12345^0",
                "out_id": "5b0d3a7e-5b53-4d5d-9a44-7c1e2b9b7b11",
            }
        ],
        KEY,
    )
    assert (r.provider, r.delivered, r.code, r.provider_message_id) == ("aliyun", True, "DELIVERED", "12345^0")
    assert r.out_id == "5b0d3a7e-5b53-4d5d-9a44-7c1e2b9b7b11"
    assert r.reported_at == datetime(2017, 1, 1, 0, 0, 1, tzinfo=UTC)  # Beijing wall clock
    assert "13811112222" not in r.key and r.key.startswith("12345^0:")


def test_tencent_callback_and_pull() -> None:
    (cb,) = receipts.parse_tencent_callback(
        [
            {
                "user_receive_time": "2015-10-17 08:03:04",
                "nationcode": "86",
                "mobile": "13800000000",
                "report_status": "FAIL",
                "errmsg": "MK:0001",
                "description": "失败",
                "sid": "5000:1",
            }
        ]
    )
    assert (cb.delivered, cb.code, cb.key, cb.out_id) == (False, "MK:0001", "5000:1", None)
    (pulled,) = receipts.parse_tencent_pull(
        [
            {
                "UserReceiveTime": 1620000000,
                "SerialNo": "5000:2",
                "ReportStatus": "SUCCESS",
                "Description": "DELIVRD",
                "SessionContext": "5b0d3a7e-5b53-4d5d-9a44-7c1e2b9b7b11",
                "PhoneNumber": "+8613800000000",
            }
        ]
    )
    assert pulled.delivered and pulled.out_id and pulled.reported_at == datetime.fromtimestamp(1620000000, UTC)


@pytest.mark.parametrize("body", [{}, [{"success": True}], [{"biz_id": "1", "success": "yes"}], "x"])
def test_bad_aliyun_reports_are_refused(body: object) -> None:
    with pytest.raises(receipts.BadReceipt):
        receipts.parse_aliyun(body, KEY)


@pytest.mark.parametrize("body", [{}, [{"sid": "1"}], [{"report_status": "SUCCESS"}]])
def test_bad_tencent_callbacks_are_refused(body: object) -> None:
    with pytest.raises(receipts.BadReceipt):
        receipts.parse_tencent_callback(body)
