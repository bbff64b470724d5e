"""The UPN generator (shared/domain/upn.py): examples, then properties over arbitrary Unicode."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.events import _user_principal_name
from shared.domain.upn import (
    DEFAULT_TEMPLATE,
    MAX_COUNTER,
    MAX_LOCAL_PART,
    PLACEHOLDERS,
    UpnGenerationError,
    UpnTemplateError,
    candidate,
    render_local_part,
    validate_template,
)

DOMAIN = "contoso.onmicrosoft.com"
# Seeded and bounded: the same examples on every run, fast enough for CI.
PROPERTY_SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, database=None)


def names(first: str | None, last: str | None, **more: str | None) -> dict[str, str | None]:
    return {"firstName": first, "lastName": last, **more}


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        (DEFAULT_TEMPLATE, names("Zoë", "Ångström"), "zoe.angstrom"),
        (DEFAULT_TEMPLATE, names("Jane", "Doe"), "jane.doe"),
        (DEFAULT_TEMPLATE, names("Mary Ann", "van der Berg"), "maryann.vanderberg"),
        (DEFAULT_TEMPLATE, names("Jean-Luc", "O\u2019Brien"), "jean-luc.o'brien"),
        (DEFAULT_TEMPLATE, names("Straße", "Müller"), "strasse.muller"),
        (DEFAULT_TEMPLATE, names("Жанна", "Иванова"), "zhanna.ivanova"),
        (DEFAULT_TEMPLATE, names("伟", "张"), "wei.zhang"),
        (DEFAULT_TEMPLATE, names("Ze\u0301", "Doe"), "ze.doe"),  # decomposed accent
        (DEFAULT_TEMPLATE, names("😀 Jane ★", "Doe $"), "jane.doe"),  # symbols dropped
        (DEFAULT_TEMPLATE, names("", "Doe"), "doe"),
        (DEFAULT_TEMPLATE, names(None, "Doe"), "doe"),
        (DEFAULT_TEMPLATE, names("J.", "Doe"), "j.doe"),
        (DEFAULT_TEMPLATE, names(".Jane..", "..Doe."), "jane.doe"),
        ("{firstName[0]}{lastName}", names("Åsa", "Berg"), "aberg"),
        ("{firstName[0]}.{lastName}", names("-Élise", "Roy"), "e.roy"),
        ("{lastName}_{firstName[0]}", names("jane", "DOE"), "doe_j"),
        ("hr-{immutableId}", {"immutableId": "E12345"}, "hr-e12345"),
        ("{displayName}", {"displayName": "Jane Q. Doe"}, "janeq.doe"),
        ("{firstName}", names("ANN", "X"), "ann"),
        ("X.{lastName}", names("", "Doe"), "x.doe"),
    ],
)
def test_render_examples(template, fields, expected):
    assert render_local_part(template, fields) == expected


def test_long_names_are_cut_leaving_room_for_the_counter():
    local = render_local_part(DEFAULT_TEMPLATE, names("a" * 40, "b" * 40))
    assert len(local) == MAX_LOCAL_PART - 2
    assert len(candidate(local, DOMAIN, MAX_COUNTER).split("@")[0]) == MAX_LOCAL_PART


def test_a_cut_never_ends_with_a_period():
    local = render_local_part(DEFAULT_TEMPLATE, names("a" * 61, "doe"))
    assert local == "a" * 61


@pytest.mark.parametrize(
    "fields",
    [
        names("★★★", "!!!"),  # symbols only; "!" alone carries no letter or digit
        names("", ""),
        names(None, None),
        names("😀", "☃"),
        names("\u200b", "\u0301"),  # a zero-width space and a lone combining accent
        names("...", "---"),
    ],
)
def test_nothing_usable_left_is_a_specific_error(fields):
    with pytest.raises(UpnGenerationError) as raised:
        render_local_part(DEFAULT_TEMPLATE, fields)
    assert raised.value.field == "user.firstName, user.lastName"
    assert "no letter or digit" in raised.value.rule
    assert "userPrincipalName" in str(raised.value)


def test_the_error_does_not_repeat_the_names():
    with pytest.raises(UpnGenerationError) as raised:
        render_local_part(DEFAULT_TEMPLATE, names("!#~^", "★☃"))
    assert "!#~^" not in str(raised.value)
    assert "★" not in str(raised.value)


def test_a_missing_field_named_by_the_template_counts_as_empty():
    with pytest.raises(UpnGenerationError) as raised:
        render_local_part("{immutableId}", names("Jane", "Doe"))
    assert raised.value.field == "user.immutableId"


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "jane.doe@contoso.onmicrosoft.com"),
        (2, "jane.doe2@contoso.onmicrosoft.com"),
        (99, "jane.doe99@contoso.onmicrosoft.com"),
    ],
)
def test_candidates(n, expected):
    assert candidate("jane.doe", "Contoso.OnMicrosoft.com", n) == expected


@pytest.mark.parametrize("n", [0, -1, 100])
def test_the_counter_is_bounded(n):
    with pytest.raises(ValueError, match="1 to 99"):
        candidate("jane.doe", DOMAIN, n)


@pytest.mark.parametrize(
    ("local", "domain"),
    [
        ("", DOMAIN),
        ("Jane", DOMAIN),
        (".jane", DOMAIN),
        ("a" * 63, DOMAIN),
        ("jane", ""),
        ("jane", "a@b.com"),
        ("jane doe", DOMAIN),
    ],
)
def test_candidate_refuses_what_render_would_never_return(local, domain):
    with pytest.raises(ValueError):
        candidate(local, domain, 1)


@pytest.mark.parametrize(
    "template",
    [
        DEFAULT_TEMPLATE,
        "{firstName[0]}{lastName}",
        "{lastName}_{firstName}",
        "hr-{immutableId}",
        "{displayName}",
        "x.{firstName}.{lastName[0]}",
        "{firstName}'{lastName}!#^~",
    ],
)
def test_valid_templates(template):
    validate_template(template)


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{middleName}.{lastName}", "unknown placeholder {middleName}"),
        ("{firstname}", "unknown placeholder {firstname}"),
        ("{firstName[1]}", "not of the form"),
        ("{firstName.upper}", "not of the form"),
        ("{}", "not of the form"),
        ("{firstName", "unmatched"),
        ("firstName}", "unmatched"),
        ("{{firstName}}", "unmatched"),
        ("jane.doe", "at least one placeholder"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("{firstName} {lastName}", "literal text ' '"),
        ("{firstName}@{lastName}", "literal text '@'"),
        ("{firstName}é", "literal text"),
    ],
)
def test_invalid_templates_name_the_setting_and_the_rule(template, words):
    with pytest.raises(UpnTemplateError) as raised:
        validate_template(template)
    assert str(raised.value).startswith("app setting UPN_TEMPLATE: ")
    assert words in str(raised.value)
    with pytest.raises(UpnTemplateError):
        render_local_part(template, names("Jane", "Doe"))


# Properties ----------------------------------------------------------------------------------

TEMPLATES = st.sampled_from(
    [
        DEFAULT_TEMPLATE,
        "{firstName[0]}{lastName}",
        "{lastName}.{firstName[0]}",
        "{displayName}",
        "{firstName}_{lastName}_{immutableId}",
        "..{firstName}..",
        "~{lastName[0]}",
    ]
)
ANY_TEXT = st.text(max_size=80)
FIELDS = st.fixed_dictionaries({name: st.one_of(st.none(), ANY_TEXT) for name in PLACEHOLDERS})


def assert_valid_upn(upn: str) -> None:
    assert _user_principal_name(upn) == upn  # the event contract's own validator
    local = upn.split("@")[0]
    assert len(local) <= MAX_LOCAL_PART
    assert local == local.lower() and local.isascii()


@PROPERTY_SETTINGS
@given(template=TEMPLATES, fields=FIELDS, n=st.sampled_from([1, 2, 9, 10, MAX_COUNTER]))
def test_any_names_give_a_valid_upn_or_the_specific_error(template, fields, n):
    try:
        local = render_local_part(template, fields)
    except UpnGenerationError as error:
        assert "no letter or digit" in error.rule
        return
    assert_valid_upn(candidate(local, DOMAIN, n))


@PROPERTY_SETTINGS
@given(first=st.text(max_size=30), last=st.text(max_size=30))  # no cut
def test_an_ascii_letter_or_digit_in_a_name_always_gives_a_upn(first, last):
    has_ascii_alnum = any(c.isascii() and c.isalnum() for c in first + last)
    try:
        local = render_local_part(DEFAULT_TEMPLATE, names(first, last))
    except UpnGenerationError:
        assert not has_ascii_alnum
        return
    assert any(character.isalnum() for character in local)
    assert_valid_upn(candidate(local, DOMAIN, 1))


@PROPERTY_SETTINGS
@given(
    template=st.text(alphabet=st.sampled_from("{}[]0aé .@firstNamelast"), max_size=30),
    fields=FIELDS,
)
def test_any_template_is_either_refused_at_start_up_or_renders(template, fields):
    try:
        validate_template(template)
    except UpnTemplateError:
        with pytest.raises(UpnTemplateError):
            render_local_part(template, fields)
        return
    try:
        local = render_local_part(template, fields)
    except UpnGenerationError:
        return
    assert_valid_upn(candidate(local, DOMAIN, 1))
