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
    """A random password with every character class, from the OS's secure source."""
    if length < 16:
        raise ValueError("initial passwords are at least 16 characters")
    alphabet = "".join(_CLASSES)
    characters = [secrets.choice(group) for group in _CLASSES]
    characters += [secrets.choice(alphabet) for _ in range(length - len(characters))]
    # Fisher-Yates with the secure generator, so the guaranteed classes are not always first.
    for index in range(len(characters) - 1, 0, -1):
        swap = secrets.randbelow(index + 1)
        characters[index], characters[swap] = characters[swap], characters[index]
    return "".join(characters)


def fingerprint(password: str) -> str:
    """A one-way digest, to compare passwords without keeping or passing them around."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def secret_name_for(event_id: str) -> str:
    """Key Vault names allow only letters, digits and dashes: derive one from the event id."""
    return SECRET_NAME_PREFIX + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:48]
