"""Official signature vectors (reference §1.3, §1.4, §2.2, Appendix A), byte-exact.

Both the production signers and the fakes' independent verifiers are pinned to the same vectors,
so a bug cannot hide by being shared.
"""

from __future__ import annotations

import hashlib

import pytest

from gridline_fakes import aliyun_sms as fake_aliyun
from gridline_fakes import tencent_sms as fake_tencent
from notify.providers import aliyun_sms, tencent_sms

# --- Aliyun V2 (RPC, HMAC-SHA1) ------------------------------------------------------------------

SMS_V2_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
SMS_V2_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001"
    "%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4"
    "%25BF%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode"
    "%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp"
    "%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
)
SMS_V2_SIGNATURE = "zJDF+Lrzhj/ThnlvIToysFRq6t4="
SMS_V2_URL_QUERY = (
    "Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D&AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123"
    "&PhoneNumbers=15300000001&RegionId=cn-hangzhou"
    "&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8"
    "&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0"
    "&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D"
    "&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
)

ECS_V2_PARAMS = {
    "AccessKeyId": "testid",
    "Action": "DescribeDedicatedHosts",
    "Format": "JSON",
    "RegionId": "cn-beijing",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "edb2b34af0af9a6d14deaf7c1a5315eb",
    "SignatureVersion": "1.0",
    "Timestamp": "2023-03-13T08:34:30Z",
    "Version": "2014-05-26",
}
ECS_V2_SIGNATURE = "9NaGiOspFP5UPcwX8Iwt2YJXXuk="


def test_aliyun_v2_sms_vector_string_to_sign() -> None:
    assert aliyun_sms.rpc_v2_string_to_sign("GET", SMS_V2_PARAMS) == SMS_V2_STRING_TO_SIGN
    assert fake_aliyun.v2_string_to_sign("GET", SMS_V2_PARAMS.items()) == SMS_V2_STRING_TO_SIGN


def test_aliyun_v2_sms_vector_signature() -> None:
    assert aliyun_sms.rpc_v2_signature("GET", SMS_V2_PARAMS, "testSecret") == SMS_V2_SIGNATURE
    assert fake_aliyun.v2_signature("GET", SMS_V2_PARAMS.items(), "testSecret") == SMS_V2_SIGNATURE


def test_aliyun_v2_sms_vector_url_encoding() -> None:
    # The documented request URL: Signature first, then the canonical query.
    query = "Signature=" + aliyun_sms.percent_encode(SMS_V2_SIGNATURE) + "&"
    query += aliyun_sms.canonical_query(SMS_V2_PARAMS)
    assert query == SMS_V2_URL_QUERY


def test_aliyun_v2_ignores_signature_param() -> None:
    signed = {**SMS_V2_PARAMS, "Signature": SMS_V2_SIGNATURE}
    assert aliyun_sms.rpc_v2_signature("GET", signed, "testSecret") == SMS_V2_SIGNATURE
    assert fake_aliyun.v2_signature("GET", signed.items(), "testSecret") == SMS_V2_SIGNATURE


def test_aliyun_v2_ecs_vector() -> None:
    assert aliyun_sms.rpc_v2_signature("GET", ECS_V2_PARAMS, "testsecret") == ECS_V2_SIGNATURE
    assert fake_aliyun.v2_signature("GET", ECS_V2_PARAMS.items(), "testsecret") == ECS_V2_SIGNATURE


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(" ", "%20"), ("*", "%2A"), ("~", "~"), ("-_.", "-_."), ("+", "%2B"), ("/", "%2F"), ("阿", "%E9%98%BF")],
)
def test_aliyun_percent_encoding(raw: str, encoded: str) -> None:
    assert aliyun_sms.percent_encode(raw) == encoded
    assert fake_aliyun.rfc3986(raw) == encoded


# --- Aliyun V3 (ACS3-HMAC-SHA256) ----------------------------------------------------------------

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ECS_V3_QUERY = {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", "RegionId": "cn-shanghai"}
ECS_V3_HEADERS = {
    "host": "ecs.cn-shanghai.aliyuncs.com",
    "x-acs-action": "RunInstances",
    "x-acs-version": "2014-05-26",
    "x-acs-date": "2023-10-26T10:22:32Z",
    "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
}
ECS_V3_CANONICAL = (
    "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
    "host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n"
    f"x-acs-content-sha256:{EMPTY_SHA256}\nx-acs-date:2023-10-26T10:22:32Z\n"
    "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\n"
    "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
    f"{EMPTY_SHA256}"
)
ECS_V3_AUTHORIZATION = (
    "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,"
    "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
    "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
)
V3_SIGNED = ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"]

SMS_V3_QUERY = {
    "OutId": "wo-1001:esc-2:sms",
    "PhoneNumbers": "13800138000",
    "SignName": "某市12345",
    "TemplateCode": "SMS_123456789",
    "TemplateParam": '{"order":"GD20250101001","hours":"4"}',
}
SMS_V3_HEADERS = {
    "host": "dysmsapi.aliyuncs.com",
    "x-acs-action": "SendSms",
    "x-acs-version": "2017-05-25",
    "x-acs-date": "2025-01-02T03:04:05Z",
    "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef",
}


def test_aliyun_v3_ecs_vector_canonical_request() -> None:
    canonical, signed = aliyun_sms.acs3_canonical_request("POST", "/", ECS_V3_QUERY, ECS_V3_HEADERS, b"")
    assert canonical == ECS_V3_CANONICAL
    assert signed == ";".join(V3_SIGNED)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )


def test_aliyun_v3_ecs_vector_authorization() -> None:
    authorization = aliyun_sms.acs3_authorization(
        "POST", "/", ECS_V3_QUERY, ECS_V3_HEADERS, b"", "YourAccessKeyId", "YourAccessKeySecret"
    )
    assert authorization == ECS_V3_AUTHORIZATION
    headers = {**ECS_V3_HEADERS, "x-acs-content-sha256": EMPTY_SHA256}
    expected = fake_aliyun.v3_signature(
        "POST", "/", ECS_V3_QUERY.items(), headers, V3_SIGNED, EMPTY_SHA256, "YourAccessKeySecret"
    )
    assert expected == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"


def test_aliyun_v3_sms_derived_vector() -> None:
    canonical, _ = aliyun_sms.acs3_canonical_request("POST", "/", SMS_V3_QUERY, SMS_V3_HEADERS, b"")
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "485ec3ea2e266ae5837d6404bfbeae3f82bb3e36c3991a1714016759d0949d8a"
    )
    authorization = aliyun_sms.acs3_authorization(
        "POST", "/", SMS_V3_QUERY, SMS_V3_HEADERS, b"", "testId", "testSecret"
    )
    assert authorization.endswith("Signature=d775b73cda2eb38e2a9ff1ce14156afe583744be5223700b251e929a71a18f9c")
    headers = {**SMS_V3_HEADERS, "x-acs-content-sha256": EMPTY_SHA256}
    expected = fake_aliyun.v3_signature(
        "POST", "/", SMS_V3_QUERY.items(), headers, V3_SIGNED, EMPTY_SHA256, "testSecret"
    )
    assert expected == "d775b73cda2eb38e2a9ff1ce14156afe583744be5223700b251e929a71a18f9c"


def test_aliyun_v3_does_not_sign_transport_headers() -> None:
    headers = {**ECS_V3_HEADERS, "User-Agent": "python-httpx", "Accept": "*/*", "content-length": "0"}
    assert (
        aliyun_sms.acs3_authorization("POST", "/", ECS_V3_QUERY, headers, b"", "YourAccessKeyId", "YourAccessKeySecret")
        == ECS_V3_AUTHORIZATION
    )


# --- Tencent TC3-HMAC-SHA256 ---------------------------------------------------------------------

TC3_SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
TC3_SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
CVM_BODY = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
CVM_CANONICAL = (
    "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n"
    "content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
)
CVM_STRING_TO_SIGN = (
    "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
    "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
)
CVM_SIGNATURE = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
SMS_TC3_BODY = (
    '{"PhoneNumberSet":["+8613800138000"],"SmsSdkAppId":"1400006666","SignName":"腾讯云","TemplateId":"1110",'
    '"TemplateParamSet":["GD20250101001","4"],"SessionContext":"wo-1001:esc-2:sms"}'
).encode()


def test_tc3_cvm_vector_payload_and_canonical_request() -> None:
    assert hashlib.sha256(CVM_BODY).hexdigest() == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    canonical = tencent_sms.tc3_canonical_request(
        "POST", "cvm.tencentcloudapi.com", "application/json; charset=utf-8", CVM_BODY
    )
    assert canonical == CVM_CANONICAL
    assert tencent_sms.tc3_string_to_sign(1551113065, "cvm", canonical) == CVM_STRING_TO_SIGN


def test_tc3_cvm_vector_authorization() -> None:
    authorization = tencent_sms.tc3_authorization(
        TC3_SECRET_ID,
        TC3_SECRET_KEY,
        service="cvm",
        host="cvm.tencentcloudapi.com",
        content_type="application/json; charset=utf-8",
        body=CVM_BODY,
        timestamp=1551113065,
    )
    assert authorization == (
        f"TC3-HMAC-SHA256 Credential={TC3_SECRET_ID}/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={CVM_SIGNATURE}"
    )
    expected = fake_tencent.tc3_signature(
        TC3_SECRET_KEY,
        method="POST",
        query="",
        headers={"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"},
        signed=["content-type", "host"],
        body=CVM_BODY,
        timestamp=1551113065,
        date="2019-02-25",
        service="cvm",
    )
    assert expected == CVM_SIGNATURE


def test_tc3_sms_derived_vector() -> None:
    assert hashlib.sha256(SMS_TC3_BODY).hexdigest() == (
        "4988e00899d1bdcf46b75c256b026eed5c8aa8585ae8f3fa760ecd81e26a71df"
    )
    canonical = tencent_sms.tc3_canonical_request("POST", "sms.tencentcloudapi.com", "application/json", SMS_TC3_BODY)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "cd74c2377657d2bb369c4b6aaec3bc9e01a6aa1e9a9ce5b8cf5ecfa39a165bd9"
    )
    signature = "0db691ea428da43c8f98ba00ce4701e2b3898a283e0d0180b5befcf1ad1339f8"
    assert tencent_sms.tc3_signature(TC3_SECRET_KEY, 1735787045, "sms", canonical) == signature
    expected = fake_tencent.tc3_signature(
        TC3_SECRET_KEY,
        method="POST",
        query="",
        headers={"content-type": "application/json", "host": "sms.tencentcloudapi.com"},
        signed=["content-type", "host"],
        body=SMS_TC3_BODY,
        timestamp=1735787045,
        date="2025-01-02",
        service="sms",
    )
    assert expected == signature


def test_tc3_date_is_utc_not_beijing() -> None:
    # 2025-01-02 07:59 Beijing is still 2025-01-01 in UTC.
    assert tencent_sms.tc3_date(1735775940) == "2025-01-01"
