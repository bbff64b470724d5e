"""Initial passwords: every class, only the alphabet, the asked length, one read per draw."""

from __future__ import annotations

import secrets
import string
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.passwords import generate_password

SYMBOLS = set("!#$%&*+-=?@^_")
CLASSES = (set(string.ascii_uppercase), set(string.ascii_lowercase), set(string.digits), SYMBOLS)


@given(st.integers(min_value=16, max_value=128))
def test_a_password_has_the_length_and_every_class(length: int) -> None:
    password = generate_password(length)
    assert len(password) == length
    assert all(set(password) & group for group in CLASSES)
    assert set(password) <= set().union(*CLASSES)


def test_shorter_than_16_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        generate_password(15)


def test_bytes_that_would_favour_the_first_characters_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 255 is at or above the limit (225 for 75 characters): it must never become a character.
    draws = iter([bytes([255, 0, 26, 52, 62] + [1] * 40)])
    monkeypatch.setattr(secrets, "token_bytes", lambda _n: next(draws))
    assert generate_password(20) == "Aa0!" + "B" * 16


def test_a_draw_missing_a_class_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first draw has no symbol: thrown away whole, not patched up.
    draws = iter([bytes([0, 26, 52] + [1] * 60), bytes([0, 26, 52, 62] + [1] * 60)])
    monkeypatch.setattr(secrets, "token_bytes", lambda _n: next(draws))
    assert generate_password(20) == "Aa0!" + "B" * 16


def test_one_read_of_the_random_source_per_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = Counter[str]()
    original = secrets.token_bytes

    def counted(size: int) -> bytes:
        reads["token_bytes"] += 1
        return original(size)

    monkeypatch.setattr(secrets, "token_bytes", counted)
    for _ in range(200):
        generate_password()
    # One read per draw, about one draw in twelve thrown away, rarely a second read.
    assert reads["token_bytes"] < 200 * 1.5


def test_characters_are_spread_over_the_alphabet() -> None:
    seen = Counter("".join(generate_password() for _ in range(3000)))
    assert set(seen) == set().union(*CLASSES)
    # 60,000 characters over 75: about 800 each; a skewed mapping would leave some near 0.
    assert min(seen.values()) > 500
