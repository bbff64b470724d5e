"""The hire event (docs/contract.md section 1): parsing and validation before any network call."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections import deque
from typing import Annotated, Any

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from shared.domain import jsontext

MAX_BODY_BYTES = 64 * 1024  # a storage queue message is at most 64 KiB

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Entra ID allows letters, digits and ' . - _ ! # ^ ~ in the local part of a UPN, without a
# leading or trailing period; the domain is a DNS name.
_UPN_LOCAL = re.compile(r"^[A-Za-z0-9'\-_!#^~]+(\.[A-Za-z0-9'\-_!#^~]+)*$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# ASCII digits only: str.isdigit and \d also take Arabic-Indic, fullwidth and other digits.
_SCHEMA_VERSION = re.compile(r"^1\.[0-9]+$", re.ASCII)
# Matched against member names folded by _folded_key, so "Pass_Word", fullwidth letters
# and "pass\u200bword" are caught as well.
_PASSWORD_KEY = re.compile(r"pass(word|wd)|pwd")
# Unicode categories no name, id or UPN may hold: controls, format characters (zero-width
# characters, bidi overrides and isolates, the BOM, the soft hyphen), surrogates, and the line
# and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
MAX_LICENSES = 20
# The newest 1.x this function knows; any 1.x is read as this one (docs/contract.md section 7).
EVENT_SCHEMA_VERSION = "1.1"

# The rules above as JSON Schema patterns for docs/schemas (python -m devtools.schemas). Never
# stricter than the validators, which add what a pattern cannot say (invisible characters,
# known country codes, lengths of the UPN's parts).
_DNS_LABEL_PATTERN = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_PATTERN = f"{_DNS_LABEL_PATTERN}(?:\\.{_DNS_LABEL_PATTERN})+"
_UPN_PATTERN = "^" + _UPN_LOCAL.pattern.strip("^$") + "@" + _DOMAIN_PATTERN + "$"
_NOT_BLANK = Field(json_schema_extra={"pattern": "\\S"})
_GUID_SCHEMA = Field(json_schema_extra={"pattern": _GUID.pattern})


class InvalidEvent(ValueError):
    """The message cannot be processed as a hire event.

    ``field`` names the offending member (dotted path) and ``rule`` the rule it broke; neither
    ever contains a value from the message, so the text is safe to log and to return.
    """

    def __init__(self, field: str, rule: str, *, event_id: str | None = None) -> None:
        super().__init__(f"{field}: {rule}" if field else rule)
        self.field = field
        self.rule = rule
        self.event_id = event_id


def invalid_event_message(error: InvalidEvent) -> str:
    """The outcome's error message for an invalid event (the queue function's and the HTTP
    intake's refusals say the same)."""
    return (
        f"the hire event is invalid: {error}. Correct the HR record and publish the event "
        "again (see the event contract)"
    )


class NotAnEvent(InvalidEvent):
    """The body is not a JSON object at all (not UTF-8, not JSON, or another JSON type)."""


def _no_control_characters(value: str) -> str:
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


def no_invisible_characters(value: str) -> str:
    """Refuse characters that hide or reorder text: two UPNs or names that look the same must
    be the same (validator for every name, id and UPN, schema 1.1 fields included)."""
    for char in value:
        category = unicodedata.category(char)
        if category in _INVISIBLE_CATEGORIES:
            what = "a control character" if category == "Cc" else (
                "an invisible or direction-changing character"
            )
            raise ValueError(
                f"must not contain {what} (found U+{ord(char):04X}, Unicode category {category})"
            )
    return value


def ascii_digits(value: str) -> str:
    """Refuse digits other than 0-9 where a number is expected (validator)."""
    if any(char.isdigit() and not char.isascii() for char in value):
        raise ValueError("must use the digits 0-9 only")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _guid(value: str) -> str:
    if not _GUID.fullmatch(value):
        raise ValueError("must be a GUID like 4b10bf41-ab11-40e3-8c53-cd67849b50de")
    return value.lower()


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value


def _user_principal_name(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("must be local@domain")
    if len(local) > 64:
        raise ValueError("the part before @ must be at most 64 characters")
    if not _UPN_LOCAL.fullmatch(local):
        raise ValueError(
            "the part before @ may contain only letters, digits and ' . - _ ! # ^ ~, "
            "and must not start or end with a period or hold two periods in a row"
        )
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError("the part after @ must be a domain name such as contoso.onmicrosoft.com")
    if len(domain) > 253:
        raise ValueError("the domain must be at most 253 characters")
    return value


def _domain_name(value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_DNS_LABEL.fullmatch(x) for x in labels):
        raise ValueError("must be a domain name such as contoso.onmicrosoft.com")
    return value.lower()


def _traceparent(value: str) -> str:
    # W3C Trace Context version 00; all-zero ids are invalid by that specification.
    if not _TRACEPARENT.fullmatch(value) or value[3:35] == "0" * 32 or value[36:52] == "0" * 16:
        raise ValueError("must be a W3C traceparent such as 00-<32 hex>-<16 hex>-<2 hex>")
    return value


def _country_code(value: str) -> str:
    code = value.upper()
    if (
        len(code) != 2
        or not (code.isascii() and code.isalpha())
        or pycountry.countries.get(alpha_2=code) is None
    ):
        raise ValueError("must be an ISO 3166-1 alpha-2 country code such as US or DE")
    return code


def _schema_version(value: str) -> str:
    ascii_digits(value)
    if not _SCHEMA_VERSION.fullmatch(value):
        raise ValueError("must be 1.x (this function understands schema version 1)")
    return value


_NameText = (
    AfterValidator(no_invisible_characters),
    AfterValidator(_no_control_characters),
    AfterValidator(_not_blank),
    _NOT_BLANK,
)
Name64 = Annotated[str, StringConstraints(min_length=1, max_length=64), *_NameText]
Name128 = Annotated[str, StringConstraints(min_length=1, max_length=128), *_NameText]
Name256 = Annotated[str, StringConstraints(min_length=1, max_length=256), *_NameText]


class HireEventUser(BaseModel):
    """The person to create: the hire event's user member."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        strict=True,
        use_attribute_docstrings=True,
        json_schema_extra={
            "anyOf": [{"required": ["userPrincipalName"]}, {"required": ["upnDomain"]}]
        },
    )

    user_principal_name: (
        Annotated[
            str,
            StringConstraints(min_length=3, max_length=113),
            AfterValidator(no_invisible_characters),
            AfterValidator(_no_control_characters),
            AfterValidator(_user_principal_name),
            Field(json_schema_extra={"pattern": _UPN_PATTERN}),
        ]
        | None
    ) = Field(default=None, alias="userPrincipalName")
    """The user's sign-in name; required unless upnDomain is given, and wins over it."""
    first_name: Name64 = Field(alias="firstName")
    last_name: Name64 = Field(alias="lastName")
    display_name: Name256 = Field(alias="displayName")
    usage_location: Annotated[
        str,
        StringConstraints(min_length=2, max_length=2),
        AfterValidator(_country_code),
        Field(json_schema_extra={"pattern": "^[A-Za-z]{2}$"}),
    ] = Field(alias="usageLocation")
    """ISO 3166-1 alpha-2 country code of a known country, such as US or DE."""
    immutable_id: Name128 | None = Field(default=None, alias="immutableId")
    """The employee id: only a user with exactly this immutableId is ever this hire's."""
    # Schema 1.1: the function generates the UPN in this domain when HR gives none.
    upn_domain: (
        Annotated[
            str,
            StringConstraints(min_length=3, max_length=253),
            AfterValidator(_domain_name),
            Field(json_schema_extra={"pattern": f"^{_DOMAIN_PATTERN}$"}),
        ]
        | None
    ) = Field(default=None, alias="upnDomain")
    """Schema 1.1: a domain of the customer; the function generates the UPN in it."""

    @model_validator(mode="after")
    def _upn_or_domain(self) -> HireEventUser:
        if self.user_principal_name is None and self.upn_domain is None:
            raise ValueError(
                "userPrincipalName is required unless upnDomain is given (then the function "
                "generates the UPN)"
            )
        return self

    @property
    def domain(self) -> str:
        if self.user_principal_name is None:
            return str(self.upn_domain)
        return self.user_principal_name.rpartition("@")[2].lower()


class LicenseRequest(BaseModel):
    """A product to assign once the user exists (schema 1.1)."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        strict=True,
        use_attribute_docstrings=True,
    )

    sku_id: Annotated[str, AfterValidator(_guid), _GUID_SCHEMA] = Field(alias="skuId")
    """The product SKU's id, a GUID, as the customer's subscribed SKUs name it."""


def _distinct_skus(value: list[LicenseRequest]) -> list[LicenseRequest]:
    ids = [item.sku_id for item in value]
    if len(set(ids)) != len(ids):
        raise ValueError("must not name a skuId twice")
    return value


class HireEvent(BaseModel):
    """A hire: one user to create in a customer's tenant (docs/contract.md section 1).

    Published by the HR system as UTF-8 JSON, base64-encoded on the request queue. Members not
    named here are ignored; a member whose name says password, anywhere, is refused.
    """

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        strict=True,
        use_attribute_docstrings=True,
    )

    schema_version: Annotated[
        str,
        AfterValidator(_schema_version),
        Field(json_schema_extra={"pattern": _SCHEMA_VERSION.pattern}),
    ] = Field(alias="schemaVersion")
    """1.0 or 1.1; any 1.x is read as the newest 1.x the function knows."""
    event_id: Annotated[
        str,
        StringConstraints(min_length=1, max_length=128),
        AfterValidator(no_invisible_characters),
        AfterValidator(_printable),
        AfterValidator(_not_blank),
        _NOT_BLANK,
    ] = Field(alias="eventId")
    """Identifies the hire: the same eventId never makes a second user."""
    customer_tenant_id: Annotated[str, AfterValidator(_guid), _GUID_SCHEMA] = Field(
        alias="customerTenantId"
    )
    """The customer's tenant id, a GUID."""
    user: HireEventUser
    """The person to create."""
    correlation_id: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=128),
            AfterValidator(no_invisible_characters),
            AfterValidator(_printable),
        ]
        | None
    ) = Field(default=None, alias="correlationId")
    """Repeated in the outcome; sent to Partner Center as MS-CorrelationId."""
    licenses: Annotated[
        list[LicenseRequest],
        Field(max_length=MAX_LICENSES, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_distinct_skus),
    ] = Field(default_factory=list, alias="licenses")
    """Schema 1.1: products to assign once the user exists, no skuId twice."""
    traceparent: (
        Annotated[
            str,
            StringConstraints(max_length=55),
            AfterValidator(_traceparent),
            Field(json_schema_extra={"pattern": _TRACEPARENT.pattern}),
        ]
        | None
    ) = Field(default=None, alias="traceparent")
    """Schema 1.1: the HR system's W3C Trace Context, continued by the function."""

    @property
    def sku_ids(self) -> tuple[str, ...]:
        return tuple(item.sku_id for item in self.licenses)

    @property
    def request_id(self) -> str:
        """The MS-RequestId of this hire's first create: the same on every retry and redelivery."""
        return self.request_id_for(0)

    def request_id_for(self, generation: int) -> str:
        """MS-RequestId for a generation of create calls.

        Partner Center says to keep the id while retrying after a timeout and to use a new
        one after a definite answer; the generation moves on after each definite refusal.
        """
        suffix = f":{generation}" if generation else ""
        return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"create-user:{self.event_id}{suffix}"))

    @property
    def correlation_guid(self) -> str:
        """MS-CorrelationId must be a GUID; a non-GUID correlationId is mapped to a stable one."""
        if self.correlation_id and _GUID.fullmatch(self.correlation_id):
            return self.correlation_id.lower()
        seed = self.correlation_id or self.event_id
        return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"correlation:{seed}"))


_REQUEST_ID_NAMESPACE = uuid.UUID("6f1f8f2e-52a3-4c5e-9d0b-8f3f4a6c2b71")


def decode_body(body: bytes) -> dict[str, Any]:
    """Turn raw message bytes into a JSON object, or raise NotAnEvent (and nothing else)."""
    if len(body) > MAX_BODY_BYTES:
        raise NotAnEvent("", f"the message is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotAnEvent("", f"the message is not UTF-8 text (byte {error.start})") from None
    try:
        document = jsontext.parse(text)
    except jsontext.JsonRejected as error:
        rule = error.rule
        if not error.field:
            rule = (
                f"the message is {rule}"
                if rule.startswith("not ")
                else rule.replace("the JSON", "the message's JSON", 1)
            )
        raise NotAnEvent(error.field, rule, event_id=_event_id_of_refused(text)) from None
    if not isinstance(document, dict):
        raise NotAnEvent("", "the message is JSON but not an object")
    return document


def _event_id_of_refused(text: str) -> str | None:
    """The eventId of a body refused for a repeated member or a lone surrogate, when it has
    one unambiguous, usable eventId: the outcome can then name the hire it refuses."""
    try:
        document = jsontext.parse(text, repeated_members=True, lone_surrogates=True)
    except jsontext.JsonRejected:
        return None  # not JSON, too deep, numbers out of range: nothing to trust
    if not isinstance(document, dict):
        return None
    try:
        jsontext.parse(text, lone_surrogates=True)
    except jsontext.JsonRejected as error:
        if error.field == "eventId":
            return None  # two eventIds: which hire is it?
    return _usable_event_id(document.get("eventId"))


def parse_event(document: dict[str, Any]) -> HireEvent:
    """Validate a decoded message against the contract; raise InvalidEvent naming field and rule.

    Total: whatever ``document`` holds, the answer is a ``HireEvent`` or an ``InvalidEvent``.
    """
    event_id = _usable_event_id(document.get("eventId")) if isinstance(document, dict) else None
    try:
        password_path = find_password(document)
        if password_path is not None:
            raise InvalidEvent(
                password_path,
                "passwords are never accepted from the HR system; remove it (the function "
                "generates the initial password)",
                event_id=event_id,
            )
        return HireEvent.model_validate(document)
    except InvalidEvent:
        raise
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        problem = InvalidEvent(_field_path(first["loc"]), _rule_text(first), event_id=event_id)
    except Exception as error:  # a validator tripped on something no rule foresaw
        problem = InvalidEvent(
            "", f"the event could not be validated ({type(error).__name__})", event_id=event_id
        )
    raise problem


def without_passwords(document: Any) -> Any:
    """A copy with every password-like member removed, so a rejected event can be kept safely."""
    return _filtered(document, 0)


def find_password(document: Any) -> str | None:
    """The path of the first password-like member anywhere in the document, if any.

    Everywhere means everywhere: ``lastFailure`` and ``replay`` are written by this function and
    the operator tool, but a message can claim to be anything.
    """
    pending: deque[tuple[Any, tuple[str | int, ...]]] = deque([(document, ())])
    while pending:
        item, path = pending.popleft()
        if isinstance(item, dict):
            for key, value in item.items():
                child = (*path, str(key))
                if is_password_key(str(key)):
                    return jsontext.describe_path(child)
                pending.append((value, child))
        elif isinstance(item, list):
            pending.extend((value, (*path, index)) for index, value in enumerate(item))
    return None


def is_password_key(name: str) -> bool:
    return bool(_PASSWORD_KEY.search(_folded_key(name)))


def _folded_key(name: str) -> str:
    """Compatibility-folded, case-folded, letters and digits only."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(char for char in folded if char.isalnum())


def _filtered(value: Any, depth: int) -> Any:
    if depth > jsontext.MAX_DEPTH:
        return None  # deeper than any decoded message can be; not worth a recursion error
    if isinstance(value, dict):
        return {
            key: _filtered(item, depth + 1)
            for key, item in value.items()
            if not is_password_key(str(key))
        }
    if isinstance(value, list):
        return [_filtered(item, depth + 1) for item in value]
    return value


def _usable_event_id(value: object) -> str | None:
    """The eventId to report for a rejected event, if it is one a consumer can key on."""
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable() and value.strip():
        return value
    return None


_FIELD_NAMES = {
    name: field.alias or name
    for model in (HireEvent, HireEventUser, LicenseRequest)
    for name, field in model.model_fields.items()
}


def _field_path(location: tuple[int | str, ...]) -> str:
    return ".".join(_FIELD_NAMES.get(str(part), str(part)) for part in location)


def _rule_text(error: Any) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind in ("string_type", "model_type", "model_attributes_type"):
        return "must be a JSON object" if kind != "string_type" else "must be a string"
    if kind == "string_too_short":
        return f"must be at least {context.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {context.get('max_length')} characters"
    if kind == "too_long":
        return f"must hold at most {context.get('max_length')} items"
    if kind == "list_type":
        return "must be a JSON array"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    return str(error["msg"])
