"""What every platform connector offers, and the errors that say why a delivery was refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from crm.models.canonical import CanonicalEvent
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder
from crm.models.stores import Platform
from crm.money import MAX_SIGNIFICANT_DIGITS
from crm.ports import StoreDirectory

# Every header a platform sends (domains, ids, signatures, timestamps) is far shorter; a longer one is
# refused before it reaches a parser or a table key (DynamoDB caps a partition key at 2,048 bytes).
MAX_HEADER_BYTES = 1024
# Unix seconds: twelve digits reach the year 33658.
_MAX_UNIX_SECONDS_DIGITS = 12
# A DynamoDB Number's exponent range: a JSON number outside it could never be stored.
_NUMBER_EXPONENTS = range(-130, 126)


class DeliveryRejected(Exception):
    """The delivery cannot be accepted; ``status`` is the HTTP answer it gets."""

    status = 400


class MissingHeader(DeliveryRejected):
    def __init__(self, header: str) -> None:
        super().__init__(f"missing required header {header}")


class HeaderTooLong(DeliveryRejected):
    def __init__(self, header: str) -> None:
        super().__init__(f"header {header} is longer than {MAX_HEADER_BYTES} bytes")


class SignatureMissing(DeliveryRejected):
    status = 401


class PayloadNotUnderstood(Exception):
    """A verified delivery we cannot turn into events (yet): it is dead-lettered with this reason."""


class Connector(Protocol):
    """A store platform: where its deliveries say who sent them, how they are signed, what they mean."""

    platform: Platform

    def store_domain(self, headers: Mapping[str, str], raw_body: bytes) -> str:
        """The domain that names the sending store, from a header or (BigCommerce) the body.

        Read before the signature is checked, so it must only locate the store, never trust the body
        (raises MissingHeader, or another DeliveryRejected naming the problem).
        """
        ...

    def signature(self, headers: Mapping[str, str]) -> str:
        """The delivery's signature header (raises SignatureMissing)."""
        ...

    def is_ping(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True for the platform's unsigned "is this URL alive" request, answered 200 with nothing stored.

        Checked before the signature, so it must recognise only the exact shape the platform sends.
        """
        ...

    def is_signed_by(
        self, headers: Mapping[str, str], raw_body: bytes, signature: str, secrets: Iterable[str]
    ) -> bool:
        """True if ``signature`` signs the delivery with any of the secrets (headers: for schemes that
        also sign header values, such as Standard Webhooks' id and timestamp)."""
        ...

    def is_fresh(self, headers: Mapping[str, str], now: datetime) -> bool:
        """False when the delivery's signed timestamp is too far from ``now`` (a replay); platforms
        that sign no timestamp return True."""
        ...

    def delivery_meta(self, headers: Mapping[str, str], raw_body: bytes) -> DeliveryMeta:
        """Topic, delivery id and timing of a delivery (raises MissingHeader or another DeliveryRejected)."""
        ...

    def events(self, envelope: IngestEnvelope, body: bytes, stores: StoreDirectory) -> list[CanonicalEvent]:
        """The canonical events a delivery carries (raises PayloadNotUnderstood).

        ``stores`` is for platforms whose bodies carry only ids and must be read with the store's API
        token (BigCommerce); the others ignore it. Other exceptions mean "try again later".
        """
        ...


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's trimmed value, its name matched in any case (HTTP/2 lowercases them); blank is absent.

    Raises HeaderTooLong (a 400) for a value longer than any platform sends."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted and value.strip():
            if len(value.encode("utf-8", "surrogatepass")) > MAX_HEADER_BYTES:
                raise HeaderTooLong(name)
            return value.strip()
    return None


def required_header(headers: Mapping[str, str], name: str) -> str:
    value = header(headers, name)
    if value is None:
        raise MissingHeader(name)
    return value


def unix_seconds(value: str | None) -> datetime | None:
    """A timestamp header in Unix seconds as a time; None when absent or not a plausible count of seconds."""
    # The length is checked before int(): Python refuses to convert very long digit strings (ValueError).
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > _MAX_UNIX_SECONDS_DIGITS:
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def first_error(error: ValidationError) -> str:
    """The first problem pydantic found, as "field.path: message"."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {first['msg']}"


def base64_hmac_sha256_matches(raw_body: bytes, signature: str, secrets: Iterable[str]) -> bool:
    """True if ``signature`` is base64(HMAC-SHA256(secret, raw body)) for any of the secrets.

    Compared in constant time; several secrets cover a rotation window.
    """
    try:
        expected = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        return False
    matched = False
    for secret in secrets:
        digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(digest, expected)
    return matched


def sign_base64_hmac_sha256(raw_body: bytes, secret: str) -> str:
    """The signature a platform would send (tests, the demo and the bench sign with it)."""
    return base64.b64encode(hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()).decode()


class _NumberOutOfBounds(ValueError):
    pass


def _bounded_integer(text: str) -> int:
    # Checked before int(), which is slow on (and refuses) very long digit strings.
    if len(text.lstrip("-").lstrip("0")) > MAX_SIGNIFICANT_DIGITS:
        raise _NumberOutOfBounds(f"a number has more than {MAX_SIGNIFICANT_DIGITS} digits")
    return int(text)


def _bounded_decimal(text: str) -> Decimal:
    number = Decimal(text)
    if len(number.as_tuple().digits) > MAX_SIGNIFICANT_DIGITS:
        raise _NumberOutOfBounds(f"a number has more than {MAX_SIGNIFICANT_DIGITS} significant digits")
    if number and number.adjusted() not in _NUMBER_EXPONENTS:
        raise _NumberOutOfBounds(f"number {text[:20]} is out of range")
    return number


def json_object(body: bytes) -> dict[str, Any]:
    """A delivery body parsed as a JSON object; numbers with a fraction stay Decimal (money keeps its digits).

    Raises PayloadNotUnderstood for anything else, including what no profile could hold: a number with more
    than 38 significant digits or out of DynamoDB's range, and nesting deeper than the parser's recursion limit.
    """
    try:
        payload = json.loads(body, parse_float=_bounded_decimal, parse_int=_bounded_integer)
    except _NumberOutOfBounds as error:
        raise PayloadNotUnderstood(f"body is out of bounds: {error}") from None
    except RecursionError:
        raise PayloadNotUnderstood("body is not valid JSON: nested too deeply") from None
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError among them
        raise PayloadNotUnderstood(f"body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise PayloadNotUnderstood("body is not a JSON object")
    return payload


OrderPayload = TypeVar("OrderPayload", bound=BaseModel)


class TopicMapper(NamedTuple):
    """How one topic's JSON object becomes canonical events.

    ``what`` names the payload in the reason a delivery is dead-lettered ("not a Shopify refund: id: ...");
    ``events`` may raise ValidationError, which becomes that reason.
    """

    what: str
    events: Callable[[dict[str, Any], IngestEnvelope], list[CanonicalEvent]]


class BodyHmacSigned:
    """Signed as Shopify signs: one header with base64 HMAC-SHA256 of the raw body, every request signed."""

    signature_header: str

    def signature(self, headers: Mapping[str, str]) -> str:
        value = header(headers, self.signature_header)
        if value is None:
            raise SignatureMissing(f"missing {self.signature_header} signature header")
        return value

    def is_ping(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return False  # every request must be signed

    def is_signed_by(
        self, headers: Mapping[str, str], raw_body: bytes, signature: str, secrets: Iterable[str]
    ) -> bool:
        return base64_hmac_sha256_matches(raw_body, signature, secrets)


class BodySignedConnector(BodyHmacSigned, Generic[OrderPayload]):
    """What Shopify and WooCommerce share: the body signature, no signed timestamp, and full order JSON in
    the body. A subclass says where its store, topic and order fields are; everything else is here once."""

    platform: Platform
    name: str  # as the platform spells itself, for error messages
    order_topics: frozenset[str]
    order_payload: type[OrderPayload]

    def is_fresh(self, headers: Mapping[str, str], now: datetime) -> bool:
        return True  # no signed timestamp to check

    def events(self, envelope: IngestEnvelope, body: bytes, stores: StoreDirectory) -> list[CanonicalEvent]:
        mapper = self.mappers().get(envelope.meta.topic)
        if mapper is None:
            raise PayloadNotUnderstood(f"unsupported {self.name} topic {envelope.meta.topic!r}")
        payload = json_object(body)
        try:
            return mapper.events(payload, envelope)
        except ValidationError as error:
            raise PayloadNotUnderstood(f"not a {self.name} {mapper.what}: {first_error(error)}") from None
        except (ValueError, ArithmeticError) as error:  # a value the mapping cannot use, e.g. a total above 1e12
            raise PayloadNotUnderstood(f"not a {self.name} {mapper.what}: {error}") from None

    def mappers(self) -> Mapping[str, TopicMapper]:
        """Every topic the connector understands: each order topic is one order; a subclass adds its others."""
        return dict.fromkeys(self.order_topics, TopicMapper("order", self._order_events))

    def _order_events(self, payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
        return [self.canonical(self.order_payload.model_validate(payload), envelope)]

    def canonical(self, order: OrderPayload, envelope: IngestEnvelope) -> CanonicalOrder:
        """The platform's order payload as the CRM's canonical order."""
        raise NotImplementedError
