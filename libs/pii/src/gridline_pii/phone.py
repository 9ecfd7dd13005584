"""Phone numbers, validated with Google's libphonenumber rules for China."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType


class InvalidPhone(ValueError):
    pass


_ACCEPTED = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalize_phone(raw: str, region: str = "CN") -> str:
    """Return E.164 (+8613800000000) for a valid mainland mobile or landline; raise InvalidPhone."""
    try:
        num = phonenumbers.parse(raw.strip(), region)
    except NumberParseException as exc:
        raise InvalidPhone("手机号码格式不正确") from exc
    if num.country_code != 86:
        # SMS providers here deliver to mainland numbers only; a foreign caller is reached by the hotline.
        raise InvalidPhone("仅支持中国大陆手机号或固定电话")
    if not phonenumbers.is_valid_number(num) or phonenumbers.number_type(num) not in _ACCEPTED:
        raise InvalidPhone("手机号码无效")
    return phonenumbers.format_number(num, PhoneNumberFormat.E164)


def is_mobile(e164: str) -> bool:
    num = phonenumbers.parse(e164, None)
    return phonenumbers.number_type(num) in {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def national(e164: str) -> str:
    """Digits as an SMS provider wants them for a mainland number (13800000000)."""
    num = phonenumbers.parse(e164, None)
    return str(num.national_number) if num.country_code == 86 else e164


def mask_phone(value: str) -> str:
    """138****0000: what a handling unit may see. Works on E.164 or national digits."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if value.startswith("+86"):
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
