"""Schema 1.1 members of the hire event: upnDomain, licenses, traceparent (1.0 stays valid)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.events import InvalidEvent, parse_event
from tests.unit.conftest import event

SKU = "c42b9cae-ea4f-4ab7-9717-81576235ccac"
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _without_upn(**user: Any) -> dict[str, Any]:
    body = event()
    del body["user"]["userPrincipalName"]
    body["user"].update(user)
    return body


def test_a_1_0_event_is_still_valid() -> None:
    parsed = parse_event(event())
    assert parsed.licenses == [] and parsed.traceparent is None
    assert parsed.user.upn_domain is None


def test_upn_domain_replaces_the_upn() -> None:
    parsed = parse_event(_without_upn(upnDomain="Contoso.OnMicrosoft.com"))
    assert parsed.user.user_principal_name is None
    assert parsed.user.domain == "contoso.onmicrosoft.com"


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        (_without_upn(), "user", "userPrincipalName is required unless upnDomain"),
        (_without_upn(upnDomain="contoso"), "user.upnDomain", "domain name"),
        (_without_upn(upnDomain="-a.com"), "user.upnDomain", "domain name"),
        (_without_upn(upnDomain=5), "user.upnDomain", "string"),
        ({**event(), "licenses": [{"skuId": "nope"}]}, "licenses.0.skuId", "GUID"),
        ({**event(), "licenses": {"skuId": SKU}}, "licenses", "array"),
        ({**event(), "licenses": [{}]}, "licenses.0.skuId", "is required"),
        ({**event(), "licenses": [{"skuId": SKU}, {"skuId": SKU.upper()}]}, "licenses", "twice"),
        (
            {
                **event(),
                "licenses": [{"skuId": f"{n:08d}-0000-0000-0000-000000000000"} for n in range(21)],
            },
            "licenses",
            "at most 20",
        ),
        ({**event(), "traceparent": "00-abc-def-01"}, "traceparent", "W3C traceparent"),
        (
            {**event(), "traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"},
            "traceparent",
            "W3C",
        ),
    ],
)
def test_bad_schema_1_1_members_name_field_and_rule(
    body: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_event(body)
    assert raised.value.field == field, str(raised.value)
    assert rule in raised.value.rule


def test_licences_and_traceparent_are_read() -> None:
    parsed = parse_event({**event(), "licenses": [{"skuId": SKU.upper()}], "traceparent": TRACE})
    assert parsed.sku_ids == (SKU,)
    assert parsed.traceparent == TRACE
