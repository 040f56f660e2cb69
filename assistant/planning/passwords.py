"""Password hashes for the chat UI's user table (COURSEPILOT_UI_USERS): scrypt, salted."""

from __future__ import annotations

import hashlib
import uuid


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt hash as 'scrypt$salt$hash' (hex)."""
    salt = salt or uuid.uuid4().bytes
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    import hmac

    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)
