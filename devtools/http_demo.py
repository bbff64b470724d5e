"""The demo's HTTP part: HR posts some hires to ``POST /api/hires`` and asks for one's status.

Kept apart from ``devtools/demo.py`` so the demo only calls three functions: which events go
over HTTP, posting them (with two the intake refuses at once), and a status call.
"""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

# How many of the batch's last events HR posts over HTTP instead of the queue.
OVER_HTTP = 3
TIMEOUT = 30


def http_keys() -> dict[str, str]:
    """A fresh function key per route, as local settings (devtools/funchost/http.py)."""
    return {
        "FUNCHOST_FUNCTION_KEY__submit_hires": secrets.token_urlsafe(24),
        "FUNCHOST_FUNCTION_KEY__hire_status": secrets.token_urlsafe(24),
    }


def split_for_http(
    batch: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(published on the queue, posted over HTTP)."""
    return batch[:-OVER_HTTP], batch[-OVER_HTTP:]


def refused_examples(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Two events the intake refuses at once: they never reach the queue."""
    with_password = copy.deepcopy(template)
    with_password["eventId"] = "hr-2026-000116"
    with_password["user"]["password"] = "Summer2026!"  # HR must never send one
    bad_tenant = copy.deepcopy(template)
    bad_tenant["eventId"] = "hr-2026-000117"
    bad_tenant["customerTenantId"] = "contoso"
    return [with_password, bad_tenant]


def post_over_http(
    console: Console, base_url: str, keys: dict[str, str], events: list[dict[str, Any]]
) -> None:
    """POST the events and the two refused examples as one batch; print the answer."""
    batch = [*events, *refused_examples(events[0])]
    console.print(
        f"HR posts {len(batch)} events to {base_url}/api/hires "
        "(header x-functions-key: the intake route's key)"
    )
    answer = requests.post(
        f"{base_url}/api/hires",
        json={"events": batch},
        headers={"x-functions-key": keys["FUNCHOST_FUNCTION_KEY__submit_hires"]},
        timeout=TIMEOUT,
    )
    table = Table(title=f"HTTP {answer.status_code}: one result per event, at once")
    for column in ("#", "eventId", "accepted", "statusUrl, or field: rule"):
        table.add_column(column, overflow="fold")
    for result in answer.json().get("results", []):
        error = result.get("error") or {}
        table.add_row(
            str(result["index"]),
            str(result.get("eventId")),
            "[green]yes[/]" if result["accepted"] else "[red]refused[/]",
            result.get("statusUrl") or f"{error.get('field')}: {error.get('rule')}",
        )
    console.print(table)
    without_key = requests.post(f"{base_url}/api/hires", json=events[0], timeout=TIMEOUT)
    console.print(f"The same post without a key: HTTP {without_key.status_code}")


def show_status(console: Console, base_url: str, keys: dict[str, str], event_id: str) -> None:
    answer = requests.get(
        f"{base_url}/api/hires/{event_id}",
        headers={"x-functions-key": keys["FUNCHOST_FUNCTION_KEY__hire_status"]},
        timeout=TIMEOUT,
    )
    console.print(
        f"GET {base_url}/api/hires/{event_id} (the status route's key): HTTP {answer.status_code}"
    )
    console.print_json(json.dumps(answer.json()))
