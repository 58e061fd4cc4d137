"""Webhook delivery against a real HTTP receiver on 127.0.0.1, and the Standard Webhooks signature
checked by an independent implementation written here from the spec's text."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from email.utils import formatdate
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service import webhooks
from service.webhooks import (
    AttemptResult,
    CallbackURLError,
    Timeouts,
    WebhookVerificationError,
    deliver,
    new_client,
    new_secret,
    secret_key,
    sign,
    validate_url,
    verify,
)
from tests.effects.receiver import Answer, Receiver, closed_port, running_receiver, self_signed

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NOW = 1_700_000_000
BODY = b'{"job":"j1","status":"succeeded","exitCode":0}'
FAST = Timeouts(connect=2.0, total=5.0)


def independent_verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """The receiver's side, from the spec alone: key = base64 after `whsec_`; content =
    `{id}.{timestamp}.{body}`; header = space-separated `v1,<base64 HMAC-SHA256>`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if "," in s]
    if not any(hmac.compare_digest(expected, sig) for sig in offered):
        raise AssertionError(f"signature does not verify: {headers['webhook-signature']}")


def attempt(url: str, *, now: int = NOW, timeout: Timeouts = FAST, **kw: bool) -> AttemptResult:
    async def go() -> AttemptResult:
        async with new_client(timeout) as client:
            return await deliver(
                client, url, SECRET, "msg_job-1_cb-0", BODY, now=now, timeout=timeout, **kw
            )

    return anyio.run(go)


# ---------------------------------------------------------------------------------------------
# Signatures


def test_official_test_vector() -> None:
    """The vector from the reference libraries' tests (standard-webhooks, test_sign_function)."""
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_delivered_request_verifies_independently() -> None:
    with running_receiver() as receiver:
        result = attempt(receiver.url)
    assert result == AttemptResult(200, None, "delivered")
    [got] = receiver.requests
    assert got.method == "POST"
    assert got.body == BODY
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == "msg_job-1_cb-0"
    assert got.headers["webhook-timestamp"] == str(NOW)
    independent_verify(SECRET, got.headers, got.body)
    verify(SECRET, got.headers, got.body, now=NOW)


def _sign_without_timestamp(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Deliberately broken: signs `{id}.{body}`, leaving the timestamp (replay protection) out."""
    digest = hmac.new(secret_key(secret), f"{msg_id}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_broken_signer_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "sign", _sign_without_timestamp)
    with running_receiver() as receiver:
        assert attempt(receiver.url).outcome == "delivered"
    [got] = receiver.requests
    with pytest.raises(AssertionError, match="does not verify"):
        independent_verify(SECRET, got.headers, got.body)


def test_verify_rejects_stale_and_future_timestamps() -> None:
    headers = {"webhook-id": "m1", "webhook-timestamp": str(NOW)}
    headers["webhook-signature"] = sign(SECRET, "m1", NOW, BODY)
    verify(SECRET, headers, BODY, tolerance=300, now=NOW + 300)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(SECRET, headers, BODY, tolerance=300, now=NOW + 301)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify(SECRET, headers, BODY, tolerance=300, now=NOW - 301)


def test_verify_accepts_any_listed_signature_and_checks_headers() -> None:
    """Secret rotation: the header may list several signatures; one v1 match is enough."""
    good = sign(SECRET, "m1", NOW, BODY)
    other = sign(new_secret(), "m1", NOW, BODY)
    headers = {"Webhook-Id": "m1", "Webhook-Timestamp": str(NOW)}
    verify(SECRET, {**headers, "Webhook-Signature": f"{other} v1a,xyz {good}"}, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError, match="no matching"):
        verify(SECRET, {**headers, "Webhook-Signature": other}, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(SECRET, headers, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify(SECRET, {**headers, "webhook-timestamp": "1e9", "webhook-signature": good}, BODY)


@pytest.mark.parametrize("msg_id", ["job.1", "", "a b", "a\nb", "jöb"])
def test_sign_refuses_ids_that_are_ambiguous_or_unsendable(msg_id: str) -> None:
    with pytest.raises(ValueError, match=re.escape("without '.' or spaces")):
        sign(SECRET, msg_id, NOW, BODY)


ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


@given(
    msg_id=st.text(ID_CHARS, min_size=1, max_size=40),
    timestamp=st.integers(0, 2**40),
    body=st.binary(max_size=300),
)
def test_sign_verify_round_trip(msg_id: str, timestamp: int, body: bytes) -> None:
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(SECRET, msg_id, timestamp, body),
    }
    verify(SECRET, headers, body, now=timestamp)
    independent_verify(SECRET, headers, body)


@given(
    msg_id=st.text(ID_CHARS, min_size=1, max_size=40),
    timestamp=st.integers(300, 2**40),
    body=st.binary(min_size=1, max_size=300),
    data=st.data(),
)
def test_any_changed_byte_fails(
    msg_id: str, timestamp: int, body: bytes, data: st.DataObject
) -> None:
    signature = sign(SECRET, msg_id, timestamp, body)
    what = data.draw(st.sampled_from(["body", "id", "timestamp"]))
    if what == "body":
        i = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 255))
        body = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    elif what == "id":
        i = data.draw(st.integers(0, len(msg_id) - 1))
        char = data.draw(st.sampled_from(ID_CHARS).filter(lambda c: c != msg_id[i]))
        msg_id = msg_id[:i] + char + msg_id[i + 1 :]
    else:
        timestamp += data.draw(st.integers(-300, 300).filter(bool))
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    with pytest.raises(WebhookVerificationError, match="no matching"):
        verify(SECRET, headers, body, now=timestamp)


# ---------------------------------------------------------------------------------------------
# Secrets


def test_new_secret_has_the_standard_form() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == 32
    assert new_secret() != secret


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with 'whsec_'"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(bytes(16)).decode(), "this one holds 16"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "this one holds 65"),
    ],
)
def test_bad_secrets_are_refused_clearly(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        secret_key(secret)


def test_unpadded_secret_is_accepted() -> None:
    padded = "whsec_" + base64.b64encode(bytes(range(25))).decode()
    assert padded.endswith("=")
    assert secret_key(padded.rstrip("=")) == bytes(range(25))


# ---------------------------------------------------------------------------------------------
# Classification against the receiver


def test_500_then_200_is_retry_then_delivered() -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(500), Answer(200))
        first = attempt(receiver.url, now=NOW)
        second = attempt(receiver.url, now=NOW + 5)
    assert first == AttemptResult(500, "HTTP 500 Internal Server Error", "retry")
    assert second == AttemptResult(200, None, "delivered")
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert ids == ["msg_job-1_cb-0", "msg_job-1_cb-0"]
    stamps = [r.headers["webhook-timestamp"] for r in receiver.requests]
    assert stamps == [str(NOW), str(NOW + 5)]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_other_4xx_gives_up(status: int) -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(status))
        result = attempt(receiver.url)
    assert (result.status, result.outcome) == (status, "give_up")
    assert result.error is not None and str(status) in result.error


@pytest.mark.parametrize("status", [502, 503, 504])
def test_5xx_retries(status: int) -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(status))
        assert attempt(receiver.url).outcome == "retry"


def test_429_retry_after_seconds() -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(429, {"Retry-After": "7"}))
        result = attempt(receiver.url)
    assert (result.status, result.outcome, result.retry_after) == (429, "retry", 7.0)


def test_503_retry_after_http_date() -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(503, {"Retry-After": formatdate(NOW + 90, usegmt=True)}))
        result = attempt(receiver.url, now=NOW)
    assert (result.outcome, result.retry_after) == ("retry", 90.0)


@pytest.mark.parametrize(
    ("value", "delay"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (formatdate(NOW - 60, usegmt=True), 0.0),
        ("Tue, 14 Nov 2023 22:13:27 -0000", 7.0),
        ("Tuesday, 14-Nov-23 22:13:27 GMT", 7.0),
        ("Tue Nov 14 22:13:27 2023", 7.0),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(value: str | None, delay: float | None) -> None:
    """Delay-seconds and HTTP-date (RFC 9110 10.2.3), its obsolete RFC 850 and asctime forms
    included; anything else is no advice rather than a guess. NOW is 2023-11-14 22:13:20 UTC."""
    assert webhooks._retry_after(value, NOW) == delay


def test_unparsable_retry_after_is_ignored() -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(429, {"Retry-After": "soon"}))
        result = attempt(receiver.url)
    assert (result.outcome, result.retry_after) == ("retry", None)


def test_receiver_down_is_retry_with_error() -> None:
    result = attempt(f"http://127.0.0.1:{closed_port()}/hook")
    assert (result.status, result.outcome) == (None, "retry")
    assert result.error is not None and "ConnectError" in result.error


def test_slow_receiver_times_out_and_retries() -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(200, delay=10))
        result = attempt(receiver.url, timeout=Timeouts(connect=0.5, total=0.5))
    assert (result.status, result.outcome) == (None, "retry")
    assert result.error is not None and "timed out" in result.error


def test_trickling_receiver_is_bounded_by_the_total_timeout() -> None:
    """A receiver that sends its answer a byte at a time never trips httpx's per-read timeout;
    only the total bound of `deliver` ends the attempt. The plain httpx call (the broken
    variant) waits for the whole trickle and reports a delivery."""
    with running_receiver() as receiver:
        receiver.answer(Answer(200, trickle=0.02), Answer(200, trickle=0.02))
        result = attempt(receiver.url, timeout=Timeouts(connect=0.5, total=0.5))

        async def plain() -> int:
            async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as client:
                return (await client.post(receiver.url, content=BODY)).status_code

        plain_status = anyio.run(plain)
    assert (result.status, result.outcome) == (None, "retry")
    assert plain_status == 200


def test_redirects_are_not_followed_even_by_a_following_client() -> None:
    async def go(url: str) -> AttemptResult:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            return await deliver(client, url, SECRET, "m1", BODY, now=NOW, timeout=FAST)

    with running_receiver() as receiver:
        receiver.answer(Answer(302, {"Location": "/elsewhere"}))
        result = anyio.run(go, receiver.url)
    assert (result.status, result.outcome) == (302, "give_up")
    assert result.error is not None and "/elsewhere" in result.error
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_unsendable_is_give_up_without_a_request() -> None:
    assert attempt("ftp://127.0.0.1/x").outcome == "give_up"
    with running_receiver() as receiver:

        async def go() -> AttemptResult:
            async with new_client(FAST) as client:
                return await deliver(
                    client, receiver.url, SECRET, "bad.id", BODY, now=NOW, timeout=FAST
                )

        result = anyio.run(go)
    assert result.outcome == "give_up"
    assert receiver.requests == []


# ---------------------------------------------------------------------------------------------
# Target policy


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "http://", "https:///path", "not a url", ""],
)
def test_validate_url_rejects_non_http(url: str) -> None:
    with pytest.raises(CallbackURLError):
        validate_url(url, forbid_private=False)


def test_validate_url_allows_loopback_unless_forbidden() -> None:
    assert validate_url("http://127.0.0.1:8080/cb", forbid_private=False) == (
        "http://127.0.0.1:8080/cb"
    )
    assert validate_url("HTTPS://Example.COM/a", forbid_private=False) == "https://example.com/a"
    with pytest.raises(CallbackURLError, match=re.escape("non-public address 127.0.0.1")):
        validate_url("http://127.0.0.1:8080/cb", forbid_private=True)
    with pytest.raises(CallbackURLError, match="non-public"):
        validate_url("http://localhost:8080/cb", forbid_private=True)
    assert validate_url("http://8.8.8.8/cb", forbid_private=True) == "http://8.8.8.8/cb"


BLOCKED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "ff02::1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]


def _naive_is_public(address: str) -> bool:
    """Deliberately broken: the common one-liner that forgets CGNAT, multicast, reserved."""
    ip = ipaddress.ip_address(address)
    return not (ip.is_private or ip.is_loopback)


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert not webhooks._is_public(address)
    with pytest.raises(CallbackURLError):
        host = f"[{address}]" if ":" in address else address
        validate_url(f"http://{host}/cb", forbid_private=True)


def _leaks(is_public: Callable[[str], bool]) -> list[str]:
    return [a for a in BLOCKED if is_public(a)]


def test_naive_address_check_is_caught() -> None:
    assert _leaks(webhooks._is_public) == []
    assert _leaks(_naive_is_public) != []


def test_public_addresses_pass() -> None:
    for address in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]:
        assert webhooks._is_public(address), address


SPECIAL_IPV4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
PUBLIC_IPV4 = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "9.9.9.9"]
TEREDO_SERVER = ipaddress.IPv4Address("65.54.227.120")
"""A public Teredo server, so a Teredo address's other half is the one under test."""


def _special_ipv4() -> st.SearchStrategy[ipaddress.IPv4Address]:
    """Any address of the private and special-purpose IPv4 blocks."""
    networks = [ipaddress.IPv4Network(n) for n in SPECIAL_IPV4]
    return st.sampled_from(networks).flatmap(
        lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net[i])
    )


def _embed(form: str, v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """`v4` inside an IPv6 address of one of the forms that carry one."""
    n = int(v4)
    bits = {
        "compatible": n,  # ::a.b.c.d
        "mapped": 0xFFFF << 32 | n,  # ::ffff:a.b.c.d
        "translated": 0xFFFF << 48 | n,  # ::ffff:0:a.b.c.d (SIIT)
        "nat64": 0x64FF9B << 96 | n,  # 64:ff9b::a.b.c.d
        "nat64-local": 0x64FF9B0001 << 80 | n,  # 64:ff9b:1::a.b.c.d
        "6to4": 0x2002 << 112 | n << 80 | 1,  # 2002:aabb:ccdd::1
        "teredo-client": 0x20010000 << 96 | int(TEREDO_SERVER) << 64 | n ^ 0xFFFFFFFF,
        "teredo-server": 0x20010000 << 96 | n << 64 | int(TEREDO_SERVER) ^ 0xFFFFFFFF,
    }[form]
    return ipaddress.IPv6Address(bits)


EMBEDDING_FORMS = [
    "compatible",
    "mapped",
    "translated",
    "nat64",
    "nat64-local",
    "6to4",
    "teredo-client",
    "teredo-server",
]


def test_the_embeddings_are_the_ones_the_standards_define() -> None:
    """The table the property below relies on, checked against known addresses."""
    metadata = ipaddress.IPv4Address("169.254.169.254")
    assert str(_embed("compatible", metadata)) == "::a9fe:a9fe"
    assert _embed("mapped", metadata).ipv4_mapped == metadata
    assert str(_embed("translated", metadata)) == "::ffff:0:a9fe:a9fe"
    assert str(_embed("nat64", metadata)) == "64:ff9b::a9fe:a9fe"
    assert str(_embed("nat64-local", metadata)) == "64:ff9b:1::a9fe:a9fe"
    assert _embed("6to4", metadata).sixtofour == metadata
    assert _embed("teredo-client", metadata).teredo == (TEREDO_SERVER, metadata)
    assert _embed("teredo-server", metadata).teredo == (metadata, TEREDO_SERVER)


@given(form=st.sampled_from(EMBEDDING_FORMS), v4=_special_ipv4())
def test_no_ipv6_form_reaches_a_private_or_special_ipv4_address(
    form: str, v4: ipaddress.IPv4Address
) -> None:
    """Issue 14: `::a9fe:a9fe` (IPv4-compatible 169.254.169.254) was accepted."""
    assert not webhooks._is_public(str(v4))
    assert not webhooks._is_public(str(_embed(form, v4))), (form, v4)


@pytest.mark.parametrize("form", ["compatible", "mapped", "translated", "nat64", "6to4"])
@pytest.mark.parametrize("address", PUBLIC_IPV4)
def test_an_ipv6_form_of_a_public_ipv4_address_passes(form: str, address: str) -> None:
    """The control: the forms are judged by the address inside, not refused as forms."""
    assert webhooks._is_public(str(_embed(form, ipaddress.IPv4Address(address))))


@pytest.mark.parametrize("form", ["nat64-local", "teredo-client", "teredo-server"])
@pytest.mark.parametrize("address", PUBLIC_IPV4)
def test_local_nat64_and_teredo_are_refused_whatever_they_carry(form: str, address: str) -> None:
    """A local-use NAT64 prefix translates on the operator's own network, where any prefix
    length may be in use; a Teredo address is reached through relays and a NAT. Neither is
    globally reachable (IANA), so neither is judged by the address inside."""
    assert not webhooks._is_public(str(_embed(form, ipaddress.IPv4Address(address))))


@pytest.mark.parametrize(
    "address",
    [
        "::",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "fec0::1",  # site-local, deprecated but still routed inside some sites
        "fd12:3456::1",
        "ff0e::1",
        "100::1",  # discard-only
        "2001:db8::1",  # documentation
        "3fff::1",  # documentation (2024)
        "5f00::1",  # segment routing SIDs
        "2001:2::1",  # benchmarking
    ],
)
def test_non_global_ipv6_ranges_are_refused(address: str) -> None:
    assert not webhooks._is_public(address)


def test_deliver_refuses_private_target_without_sending() -> None:
    with running_receiver() as receiver:
        direct = attempt(receiver.url, forbid_private=True)
        by_name = attempt(receiver.url.replace("127.0.0.1", "localhost"), forbid_private=True)
    for result in (direct, by_name):
        assert (result.status, result.outcome) == (None, "give_up")
        assert result.error is not None and "non-public" in result.error
    assert receiver.requests == []


def test_pinned_delivery_keeps_the_host_name(receiver_allowing_loopback: Receiver) -> None:
    """With a policy that admits loopback (so the pinned path can run here), a delivery to a
    name connects to the checked address and still says the name in Host."""
    receiver = receiver_allowing_loopback
    url = receiver.url.replace("127.0.0.1", "localhost")
    result = attempt(url, forbid_private=True)
    assert result.outcome == "delivered"
    [got] = receiver.requests
    assert got.headers["host"] == f"localhost:{receiver.port}"
    assert got.headers["connection"] == "close"
    independent_verify(SECRET, got.headers, got.body)


def _resolve_first(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The check's lookup of `name` answers 127.0.0.1; the system resolver does not know the
    name at all (.test and .invalid never resolve), so only a pinned request can arrive."""

    async def first_answer(host: str, port: int, **kw: object) -> list[Any]:
        assert host == name
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(anyio, "getaddrinfo", first_answer)


def test_pinned_delivery_connects_to_the_checked_address(
    receiver_allowing_loopback: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name may answer the check with one address and the connection with
    another. The delivery arrives although the system cannot resolve the name: it connected to
    the address it checked instead of resolving again."""
    receiver = receiver_allowing_loopback
    _resolve_first(monkeypatch, "rebind.invalid")
    url = f"http://rebind.invalid:{receiver.port}/hook"
    assert attempt(url, forbid_private=True).outcome == "delivered"
    [got] = receiver.requests
    assert got.headers["host"] == f"rebind.invalid:{receiver.port}"
    unpinned = attempt(url)
    assert (unpinned.outcome, len(receiver.requests)) == ("retry", 1)


def test_delivery_refuses_a_name_that_resolves_to_an_ipv4_compatible_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check at delivery is the one at creation: a name that now answers `::a9fe:a9fe`
    (169.254.169.254, IPv4-compatible) is given up, not connected to."""

    async def metadata(host: str, port: int, **kw: object) -> list[Any]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::a9fe:a9fe", port, 0, 0))]

    monkeypatch.setattr(anyio, "getaddrinfo", metadata)
    result = attempt("http://hook.test/cb", forbid_private=True)
    assert (result.status, result.outcome) == (None, "give_up")
    assert result.error is not None and "non-public address ::a9fe:a9fe" in result.error


def _tls_attempt(url: str, trust: Path) -> AttemptResult:
    async def go() -> AttemptResult:
        context = ssl.create_default_context(cafile=str(trust))
        async with httpx.AsyncClient(verify=context, trust_env=False) as client:
            return await deliver(
                client, url, SECRET, "m1", BODY, now=NOW, timeout=FAST, forbid_private=True
            )

    return anyio.run(go)


def test_pinned_https_verifies_the_certificate_against_the_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Connecting to an address must not weaken TLS: the server name sent (SNI) and checked in
    the certificate is still the URL's host. A certificate for another name is refused."""
    monkeypatch.setattr(webhooks, "_is_public", lambda a: a == "127.0.0.1")
    _resolve_first(monkeypatch, "hook.test")
    right, right_key = self_signed(tmp_path, "hook.test")
    wrong, wrong_key = self_signed(tmp_path, "other.test")
    for cert, key in ((right, right_key), (wrong, wrong_key)):
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        with running_receiver(tls) as receiver:
            result = _tls_attempt(f"https://hook.test:{receiver.port}/hook", trust=cert)
        if cert == right:
            assert result.outcome == "delivered"
            [got] = receiver.requests
            assert got.headers["host"] == f"hook.test:{receiver.port}"
        else:
            assert (result.outcome, receiver.requests) == ("retry", [])
            assert result.error is not None and "certificate" in result.error.lower()


@pytest.fixture
def receiver_allowing_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setattr(webhooks, "_is_public", lambda a: a in ("127.0.0.1", "::1"))
    with running_receiver() as receiver:
        yield receiver
