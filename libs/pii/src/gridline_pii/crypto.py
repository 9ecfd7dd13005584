"""AES-256-GCM envelope for personal data, with key ids for rotation.

Token format: ``v1.<key id>.<base64url(nonce | ciphertext+tag)>``. The associated data binds a
ciphertext to its purpose (e.g. ``"reporter-phone"``), so a token sealed for one use cannot be
replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyringError(ValueError):
    pass


def _b64d(value: str) -> bytes:
    pad = "=" * (-len(value) % 4)
    try:
        return base64.urlsafe_b64decode(value + pad)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError("not base64") from exc


def _b64e(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


class Keyring:
    """Keys by id; ``current`` seals, every key opens."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise KeyringError(f"current key {current!r} is not in the keyring")
        for kid, key in keys.items():
            if len(key) != 32:
                raise KeyringError(f"key {kid!r} must be 32 bytes")
            if "." in kid or not kid:
                raise KeyringError(f"bad key id {kid!r}")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._raw = dict(keys)
        self.current = current

    @classmethod
    def from_spec(cls, spec: str) -> Keyring:
        """Parse ``kid1:base64key1,kid2:base64key2`` (the first is current) or a bare base64 key."""
        entries = [e.strip() for e in spec.split(",") if e.strip()]
        if not entries:
            raise KeyringError("empty key specification")
        keys: dict[str, bytes] = {}
        for e in entries:
            kid, _, b64 = e.rpartition(":") if ":" in e else ("k1", "", e)
            keys[kid] = _b64d(b64.strip())
        return cls(keys, next(iter(keys)))

    @staticmethod
    def generate_spec(kid: str = "k1") -> str:
        return f"{kid}:{_b64e(os.urandom(32))}"

    def seal(self, plaintext: str, purpose: str) -> str:
        nonce = os.urandom(12)
        ct = self._keys[self.current].encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"v1.{self.current}.{_b64e(nonce + ct)}"

    def open(self, token: str, purpose: str) -> str:
        try:
            version, kid, body = token.split(".", 2)
        except ValueError as exc:
            raise KeyringError("malformed token") from exc
        if version != "v1" or kid not in self._keys:
            raise KeyringError(f"unknown token version or key id {kid!r}")
        raw = _b64d(body)
        try:
            return self._keys[kid].decrypt(raw[:12], raw[12:], purpose.encode()).decode()
        except InvalidTag as exc:
            raise KeyringError("token does not authenticate") from exc

    def hmac_key(self) -> bytes:
        # A separate derived key for lookup hashes, so the hash never reveals anything about the AES key.
        return hashlib.sha256(b"gridline-lookup-hash" + self._raw[self.current]).digest()


def lookup_hash(value: str, key: bytes) -> str:
    """Keyed hash for equality lookups (same caller, duplicate detection) without storing the value."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def caller_hash(phone: str, tenant: str, key: bytes) -> str:
    """The caller's lookup hash under a per-tenant key: equal within a tenant, unrelated across tenants.

    ``phone`` is the normalised number; ``key`` a service's lookup key (``Keyring.hmac_key()``).
    """
    tenant_key = hmac.new(key, b"gridline-tenant-lookup:" + tenant.encode(), hashlib.sha256).digest()
    return lookup_hash(phone, tenant_key)
