"""Standard Webhooks (https://www.standardwebhooks.com): secrets, signatures, one delivery attempt.

This module performs a single attempt and classifies it; it keeps no state. Which attempt comes
next, and when, is the caller's decision, recorded as events (intent -> attempt -> outcome), so
that a crash between two attempts loses nothing and the same `webhook-id` is sent again.

Signature scheme (spec, "Signature scheme"): `v1,` + base64(HMAC-SHA256(key, f"{id}.{ts}." +
body)) where key is the base64-decoded part of a `whsec_` secret. Receivers verify it with
`verify` (or any Standard Webhooks library), reject timestamps outside a tolerance (replay
protection) and dedupe on `webhook-id`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

import anyio
import httpx

SECRET_PREFIX = "whsec_"
# The spec: "Random. At least 24 bytes (192 bits, 512 maximum)".
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
NEW_SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300


class WebhookVerificationError(Exception):
    """A received webhook is not authentic, or its timestamp is outside the tolerance."""


class CallbackURLError(ValueError):
    """A callback URL the server refuses to call (the API answers 422 with this message)."""


# ---------------------------------------------------------------------------------------------
# Secrets and signatures


def new_secret() -> str:
    """A fresh secret in the Standard Webhooks serialisation, so any receiver library takes it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(NEW_SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_` secret. Raises ValueError saying what is wrong with it."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    # Other implementations emit unpadded base64; accept it, as the reference libraries do.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret is {SECRET_PREFIX} + base64: {exc}") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"this one holds {len(key)}"
        )
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt.

    The id may not contain '.', as the spec requires: the signed content is '.'-delimited, and a
    dot in the id would let two different (id, timestamp) pairs sign the same bytes. It is a
    header value too, so printable ASCII without spaces: an id that cannot be sent must fail
    here, not as a network error that would be retried for ever.
    """
    return _signature(secret, msg_id, str(timestamp), body)


def _signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    sendable = msg_id.isascii() and msg_id.isprintable() and " " not in msg_id
    if not msg_id or "." in msg_id or not sendable:
        raise ValueError(f"a webhook id is printable ASCII without '.' or spaces: {msg_id!r}")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> None:
    """What a receiver does: check the headers sign `body` with `secret`, recently.

    `webhook-signature` may list several space-separated signatures (secret rotation); one
    matching `v1` signature is enough. Comparison is constant-time. Raises
    WebhookVerificationError; returns nothing, so a caller cannot mistake a result for success.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (stamp.isascii() and stamp.isdigit()):
        raise WebhookVerificationError(f"webhook-timestamp is not an integer: {stamp!r}")
    timestamp = int(stamp)
    current = int(time.time()) if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("webhook-timestamp too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("webhook-timestamp too new")
    try:
        # Over the header's own text, as every receiver library does: what was sent is signed.
        expected = _signature(secret, msg_id, stamp, body).encode()
    except ValueError as exc:
        raise WebhookVerificationError(str(exc)) from None
    for candidate in signatures.split(" "):
        if candidate.startswith(SIGNATURE_VERSION + ",") and hmac.compare_digest(
            candidate.encode(), expected
        ):
            return
    raise WebhookVerificationError("no matching signature")


# ---------------------------------------------------------------------------------------------
# Targets: which URLs may be called


def validate_url(url: str, *, forbid_private: bool) -> str:
    """Check a callback URL when a job is created, so a bad one is a 422, not a failed delivery.

    http and https only, with a host. With `forbid_private`, the host is resolved now (this
    blocks on DNS: call it off the event loop) and every address must be public. That check
    alone cannot stop DNS rebinding (the name may resolve elsewhere later), which is why
    `deliver(..., forbid_private=True)` resolves again and connects to the address it checked.
    Returns the URL normalised by httpx.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise CallbackURLError(f"callback URL {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise CallbackURLError(f"callback URL {url!r} must be http or https")
    if not parsed.host:
        raise CallbackURLError(f"callback URL {url!r} has no host")
    if forbid_private:
        try:
            infos = socket.getaddrinfo(parsed.host, _port(parsed), type=socket.SOCK_STREAM)
        except OSError as exc:
            msg = f"callback host {parsed.host!r} does not resolve: {exc}"
            raise CallbackURLError(msg) from None
        _check_public(parsed.host, [str(info[4][0]) for info in infos])
    return str(parsed)


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _is_public(address: str) -> bool:
    """Global unicast only: loopback, private, link-local (cloud metadata), CGNAT, reserved,
    multicast and unspecified are refused; an IPv6 address that carries an IPv4 one is judged
    by the IPv4 address it reaches (see `_embedded_ipv4`).

    The one check of both the creation of a callback and each delivery (on the address the
    delivery then connects to). Python's own tables (`is_global`) differ between patch
    releases and miss some ranges, so the ranges that are never a webhook receiver are
    listed here as well."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip in network for network in _NOT_GLOBAL):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _is_public(str(embedded))
    return ip.is_global and not ip.is_multicast


_NOT_GLOBAL = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared (CGNAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): the operator's own network, any
        # prefix length, so the IPv4 address inside cannot be found; refused whole
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments: Teredo (2001::/32, reached through relays
        # and a NAT, refused whatever it carries), benchmarking, ORCHID, a few anycast
        # services (none of them a webhook receiver)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed inside some sites)
        "ff00::/8",  # multicast
    )
)

_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a packet to `ip` is delivered to, when `ip` carries one: in its last
    32 bits for IPv4-compatible (::a.b.c.d), IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
    (::ffff:0:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d); in bits 16-48 for 6to4 (2002::/16)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _check_public(host: str, addresses: list[str]) -> None:
    blocked = sorted({a for a in addresses if not _is_public(a)})
    if blocked:
        raise CallbackURLError(
            f"callback host {host!r} resolves to non-public address {', '.join(blocked)} "
            "(private and loopback targets are forbidden by configuration)"
        )


async def _pin_public(url: httpx.URL) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """Resolve once, check every address, and aim the request at the first one.

    The Host header keeps the name (virtual hosting) and, for https, so does the TLS server
    name (SNI and certificate check, via httpcore's `sni_hostname`). `Connection: close` keeps
    the pinned connection out of the pool, where a later request to another name on the same
    address could otherwise reuse a TLS session verified for this name.
    """
    host = url.host
    try:
        infos = await anyio.getaddrinfo(host, _port(url), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot resolve {host!r}: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    _check_public(host, addresses)
    headers = {"host": url.netloc.decode("ascii"), "connection": "close"}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return url.copy_with(host=addresses[0]), headers, extensions


# ---------------------------------------------------------------------------------------------
# Delivery


@dataclass(frozen=True)
class Timeouts:
    """connect bounds reaching the receiver; total bounds the whole attempt, headers included,
    so a receiver that trickles bytes cannot hold a delivery (httpx's own timeouts are per
    read/write, not per request)."""

    connect: float = 5.0
    total: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.connect <= self.total:
            raise ValueError(f"need 0 < connect <= total, got {self.connect} and {self.total}")


def client_timeouts(timeouts: Timeouts) -> httpx.Timeout:
    """The httpx timeouts for a delivery client; `deliver` adds the total bound itself."""
    return httpx.Timeout(timeouts.total, connect=timeouts.connect)


def new_client(timeouts: Timeouts) -> httpx.AsyncClient:
    """A client fit for webhooks: no redirects, and no environment (no proxy variables, no
    .netrc credentials sent to whatever host a job names)."""
    return httpx.AsyncClient(
        timeout=client_timeouts(timeouts), follow_redirects=False, trust_env=False
    )


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did. `status` is the HTTP status if a response came, `error` a short
    reason when it was not a 2xx, `retry_after` the delay in seconds the receiver asked for
    (Retry-After on a retryable answer; unbounded: the caller caps it to its schedule)."""

    status: int | None
    error: str | None
    outcome: Literal["delivered", "retry", "give_up"]
    retry_after: float | None = None


def _retry_after(value: str | None, now: int) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": the spec's HTTP-date is GMT anyway
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _classify(response: httpx.Response, now: int) -> AttemptResult:
    """2xx delivered; 429 and 5xx retry; everything else gives up, 3xx included: the spec asks
    senders not to follow redirects (the receiver should fix its URL)."""
    status = response.status_code
    if 200 <= status < 300:
        return AttemptResult(status, None, "delivered")
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    if status == 429 or status >= 500:
        delay = _retry_after(response.headers.get("retry-after"), now)
        return AttemptResult(status, reason, "retry", delay)
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        reason += f" (redirect to {location!r} not followed)" if location else " (redirect)"
    return AttemptResult(status, reason, "give_up")


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    webhook_id: str,
    body: bytes,
    *,
    now: int,
    timeout: Timeouts,
    forbid_private: bool = False,
) -> AttemptResult:
    """POST one signed attempt and classify it. Never raises for anything the network or the
    receiver does: every failure is an AttemptResult the caller records.

    `now` is the attempt's timestamp (seconds), signed into `webhook-timestamp`; a retry signs
    a new one with the same `webhook_id`. The response body is never read (a receiver cannot
    make us buffer it). Redirects are never followed, whatever the client's setting.
    """
    try:
        target = httpx.URL(url)
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(secret, webhook_id, now, body),
        }
        extensions: dict[str, str] = {}
        with anyio.fail_after(timeout.total):
            if forbid_private:
                target, pinned, extensions = await _pin_public(target)
                headers.update(pinned)
            request = client.build_request(
                "POST",
                target,
                headers=headers,
                content=body,
                timeout=client_timeouts(timeout),
                extensions=extensions,
            )
            response = await client.send(request, follow_redirects=False, stream=True)
            await response.aclose()
    except (CallbackURLError, ValueError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return AttemptResult(None, f"not sendable: {exc}", "give_up")
    except TimeoutError:
        return AttemptResult(None, f"timed out: no answer within {timeout.total}s", "retry")
    except httpx.TimeoutException as exc:
        return AttemptResult(None, f"timed out: {type(exc).__name__} {exc}".rstrip(), "retry")
    except httpx.TransportError as exc:
        return AttemptResult(None, f"{type(exc).__name__}: {exc}", "retry")
    return _classify(response, now)
