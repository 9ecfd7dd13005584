import pytest

from gridline_pii import InvalidPhone, Keyring, KeyringError, lookup_hash, mask_phone, normalize_phone
from gridline_pii.phone import national


def test_normalize_mobile_and_landline() -> None:
    assert normalize_phone("138 0013 8000") == "+8613800138000"
    assert normalize_phone("+86 138-0013-8000") == "+8613800138000"
    assert normalize_phone("0571-87654321") == "+8657187654321"
    assert national("+8613800138000") == "13800138000"


@pytest.mark.parametrize("bad", ["12345", "1380013800", "abc", "", "+1 202 555 0000x"])
def test_rejects_invalid(bad: str) -> None:
    with pytest.raises(InvalidPhone):
        normalize_phone(bad)


def test_mask() -> None:
    assert mask_phone("+8613800138000") == "138****8000"
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("123") == "***"


def test_seal_open_roundtrip_and_purpose_binding() -> None:
    ring = Keyring.from_spec(Keyring.generate_spec("k1"))
    token = ring.seal("+8613800138000", "reporter-phone")
    assert "13800138000" not in token
    assert ring.open(token, "reporter-phone") == "+8613800138000"
    with pytest.raises(KeyringError):
        ring.open(token, "unit-phone")
    assert ring.seal("x", "p") != ring.seal("x", "p")  # random nonce


def test_rotation_old_tokens_still_open() -> None:
    old = Keyring.generate_spec("k1")
    token = Keyring.from_spec(old).seal("secret", "p")
    rotated = Keyring.from_spec(Keyring.generate_spec("k2") + "," + old)
    assert rotated.current == "k2"
    assert rotated.open(token, "p") == "secret"
    assert rotated.seal("secret", "p").startswith("v1.k2.")


def test_tampered_and_foreign_tokens_fail() -> None:
    ring = Keyring.from_spec(Keyring.generate_spec())
    token = ring.seal("secret", "p")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(KeyringError):
        ring.open(tampered, "p")
    with pytest.raises(KeyringError):
        Keyring.from_spec(Keyring.generate_spec()).open(token, "p")
    with pytest.raises(KeyringError):
        ring.open("garbage", "p")


def test_bad_keys_rejected() -> None:
    with pytest.raises(KeyringError):
        Keyring.from_spec("k1:c2hvcnQ")
    with pytest.raises(KeyringError):
        Keyring.from_spec("")


def test_lookup_hash_is_keyed() -> None:
    assert lookup_hash("a", b"k" * 32) == lookup_hash("a", b"k" * 32)
    assert lookup_hash("a", b"k" * 32) != lookup_hash("a", b"j" * 32)
