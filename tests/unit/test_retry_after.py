"""One reading of Retry-After for every service (shared/domain/errors.py, retry_after_seconds)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.errors import retry_after_seconds

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Sat, 21 Nov 2026 09:31:00 GMT", 60.0),  # IMF-fixdate
        ("Saturday, 21-Nov-26 09:31:00 GMT", 60.0),  # obsolete RFC 850
        ("Sat Nov 21 09:31:00 2026", 60.0),  # obsolete asctime, read as UTC
        ("Sat, 21 Nov 2026 09:00:00 GMT", 0.0),  # in the past: no wait
    ],
)
def test_delta_seconds_and_http_dates_are_read(header: str, seconds: float) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "-3", "inf", "nan", "1e3", "1_000", "٣", "9" * 400, "soon", "Sat, 99 Foo"],
)
def test_anything_else_is_no_header(header: str | None) -> None:
    assert retry_after_seconds(header, now=NOW) is None
