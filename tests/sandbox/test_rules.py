"""The sandbox's network rules and the config entries that open holes in them."""

from __future__ import annotations

import pytest

from service.config import ConfigError, load_config
from service.sandbox.network import DENIED_V4, Allowed, ruleset


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("192.0.2.10", "ip daddr 192.0.2.10/32 accept"),
        ("192.0.2.10:8080", "ip daddr 192.0.2.10/32 tcp dport 8080 accept"),
        ("10.1.0.0/16", "ip daddr 10.1.0.0/16 accept"),
        ("2001:db8::1", "ip6 daddr 2001:db8::1/128 accept"),
        ("[2001:db8::1]:443", "ip6 daddr 2001:db8::1/128 tcp dport 443 accept"),
    ],
)
def test_an_allowed_entry_becomes_one_accept_rule(entry: str, rule: str) -> None:
    assert Allowed(entry).rule() == rule


@pytest.mark.parametrize(
    "entry", ["model.example.com", "192.0.2.10:0", "192.0.2.10:70000", "1.2.3:80", "[::1]:x", ""]
)
def test_a_bad_entry_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match="agent_network_allow"):
        Allowed(entry)


def test_allowed_destinations_come_before_the_refusals() -> None:
    rules = ruleset(["192.0.2.10:8080"], deny=["192.0.2.2"]).splitlines()
    accept = rules.index("    ip daddr 192.0.2.10/32 tcp dport 8080 accept")
    reject = next(i for i, line in enumerate(rules) if "reject" in line)
    assert accept < reject
    assert "192.0.2.2/32" in rules[reject] and "169.254.0.0/16" in rules[reject]
    assert all(network in rules[reject] for network in DENIED_V4)
    assert any(line.strip().startswith("meta nfproto ipv6 reject") for line in rules)


def test_the_config_refuses_a_bad_allow_entry() -> None:
    with pytest.raises(ConfigError, match="'nope' is not ADDRESS"):
        load_config(None, agent_network_allow=["nope"])
