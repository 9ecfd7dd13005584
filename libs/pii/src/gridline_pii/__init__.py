"""Reporters' personal information: validation, masking, encryption at rest and sealed transit tokens.

Nothing in Gridline keeps or sends a phone number in clear outside this module's callers' encrypted
columns. Keys are 32 random bytes, base64, each with a short key id so keys can be rotated: a
ciphertext names the key that sealed it.
"""

from .crypto import Keyring, KeyringError, caller_hash, lookup_hash
from .phone import InvalidPhone, mask_phone, normalize_phone

__all__ = ["InvalidPhone", "Keyring", "KeyringError", "caller_hash", "lookup_hash", "mask_phone", "normalize_phone"]
