"""Initial passwords: generated here, kept in Key Vault, referred to by secret id only.

Pure functions: the hire ledger says which secret version is a hire's password, the vault
adapter stores and reads it.
"""

from __future__ import annotations

import hashlib
import secrets
import string

PASSWORD_LENGTH = 20
_SYMBOLS = "!#$%&*+-=?@^_"
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, _SYMBOLS)
SECRET_NAME_PREFIX = "initial-password-"
CONTENT_TYPE = "initial-password"


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password with every character class, from the OS's secure source.

    Uniform over the passwords of ``length`` characters of the alphabet that hold every
    class: characters are drawn uniformly (rejection sampling on random bytes), and a draw
    missing a class is thrown away whole (about one in twelve at 20 characters). One read of
    the OS's source per draw: drawing character by character cost about 60 reads per hire,
    4 % of the function's CPU (docs/cost-per-hire.md).
    """
    if length < 16:
        raise ValueError("initial passwords are at least 16 characters")
    while True:
        password = "".join(_ALPHABET[index] for index in _uniform_indexes(length))
        if all(any(character in group for character in password) for group in _CLASSES):
            return password


_ALPHABET = "".join(_CLASSES)
# The largest multiple of the alphabet's size a byte can hold: bytes at or above it would
# favour the alphabet's first characters and are skipped.
_BYTE_LIMIT = 256 - 256 % len(_ALPHABET)


def _uniform_indexes(count: int) -> list[int]:
    """``count`` indexes into ``_ALPHABET``, each uniform and independent."""
    indexes: list[int] = []
    while len(indexes) < count:
        # Seven bytes of eight are kept on average: ask for enough that one read nearly always does.
        chunk = secrets.token_bytes(2 * (count - len(indexes)) + 8)
        indexes += [byte % len(_ALPHABET) for byte in chunk if byte < _BYTE_LIMIT]
    return indexes[:count]


def fingerprint(password: str) -> str:
    """A one-way digest, to compare passwords without keeping or passing them around."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def secret_name_for(event_id: str) -> str:
    """Key Vault names allow only letters, digits and dashes: derive one from the event id."""
    return SECRET_NAME_PREFIX + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:48]
