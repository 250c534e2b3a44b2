"""Properties of host normalisation, over strings Hypothesis makes up (issue 10, part 4).

For any string, `normalise_host` either refuses it (None) or gives a canonical name that the
lookup and the connection agree on; and a social name is never "not social" by accident,
under any spelling, port, case, Unicode form or junk around it.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_addons.decide import Outcome, classify, decide
from proxy_addons.hosts import normalise_host
from proxy_addons.policy.model import Policy
from tests.support.policy_texts import NAMES_NETWORK as NETWORK
from tests.support.policy_texts import NAMES_NOON as NOON
from tests.support.policy_texts import NAMES_SOCIAL as SOCIAL
from tests.support.policy_texts import names_policy

FAST = settings(max_examples=600, deadline=None)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return names_policy()


# Strings that look like host names often enough to reach every branch: name characters,
# the separators of a host:port and of URLs, control characters, IDNA-mapped Unicode.
HOSTISH = st.lists(
    st.sampled_from(
        [
            *"abcfkoxz09-_.:[]@%/\\ \t",
            *["\x00", "\x01", "\x7f", "\n", "ß", "ü", "Ａ", "。", "．", "\u00ad", "\u200b"],
            *["ffff", "::", "0x", "facebook", ".com"],
        ]
    ),
    max_size=20,
).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=60), HOSTISH)


def _connection_form(name: str) -> None:
    """The canonical name parses as the connection layer would use it, unchanged."""
    if ":" in name or name[0].isdigit():
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            assert str(ip) == name
            assert getattr(ip, "ipv4_mapped", None) is None  # mapped: given in IPv4 form
            return
    # A name: ASCII, as the socket layer's IDNA codec would send it, in valid labels.
    assert name.isascii()
    assert name.encode("idna") == name.encode("ascii")
    assert len(name) <= 253
    assert all(0 < len(label) <= 63 for label in name.split("."))
    assert name == name.lower()


@FAST
@given(ANY_TEXT)
def test_normalise_is_canonical_or_refuses(raw: str) -> None:
    """None, or a name that normalises to itself and that the connection would use as is."""
    name = normalise_host(raw)
    if name is None:
        return
    assert normalise_host(name) == name
    _connection_form(name)


SUB = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10),
    max_size=3,
)


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


@st.composite
def social_spelling(draw: st.DrawFn) -> str:
    """A social name under the spellings that reach it: case, dots, ports, Unicode forms."""
    labels = [*draw(SUB), *draw(st.sampled_from(SOCIAL)).split(".")]
    name = ".".join(labels)
    name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    form = draw(st.sampled_from(["plain", "fullwidth", "ideographic-dot", "soft-hyphen"]))
    if form == "fullwidth":
        name = _fullwidth(name)
    elif form == "ideographic-dot":
        name = name.replace(".", "\u3002")
    elif form == "soft-hyphen":
        name = name.replace("o", "o\u00ad")  # IDNA maps U+00AD to nothing
    if draw(st.booleans()):
        name += "."
    if draw(st.booleans()):
        name += f":{draw(st.integers(0, 65535))}"
    return name


@st.composite
def network_spelling(draw: st.DrawFn) -> str:
    """An address in the category's IPv4 network, in every spelling a socket connects to."""
    ip = NETWORK[draw(st.integers(0, 255))]
    n = int(ip)
    a, b, c, d = ip.packed
    form = draw(
        st.sampled_from(["dotted", "int", "hex", "octal", "two", "mapped", "mapped-hex", "nat64"])
    )
    spelled = {
        "dotted": str(ip),
        "int": str(n),
        "hex": f"0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}",
        "octal": f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        "two": f"{a}.{(b << 16) | (c << 8) | d}",
        "mapped": f"::ffff:{ip}",
        "mapped-hex": f"0:0:0:0:0:FFFF:{n >> 16:x}:{n & 0xFFFF:x}",
        "nat64": f"64:ff9b::{ip}",
    }[form]
    if ":" in spelled and draw(st.booleans()):
        spelled = f"[{spelled}]:{draw(st.integers(1, 65535))}"
    return spelled


@FAST
@given(st.one_of(social_spelling(), network_spelling()))
def test_every_spelling_of_a_social_name_is_social(policy: Policy, raw: str) -> None:
    """Every generated spelling normalises, and the lookup classifies it as social."""
    name = normalise_host(raw)
    assert name is not None, raw
    assert classify(policy, name) is not None, (raw, name)


JUNK = st.text(max_size=30)


@FAST
@given(
    prefix=ANY_TEXT,
    social=social_spelling(),
    junk=JUNK,
    sep=st.sampled_from(["", ":", "\x00", "/", " ", "@", "\\", "%"]),
)
def test_a_social_suffix_is_never_not_social(
    policy: Policy, prefix: str, social: str, junk: str, sep: str
) -> None:
    """A name ending in a social domain, or with junk after it at a separator, is blocked."""
    raw = f"{prefix}.{social}{sep}{junk}" if sep else f"{prefix}.{social}"
    name = normalise_host(raw)
    if name is not None and not sep:
        assert classify(policy, name) is not None, (raw, name)
    d = decide(policy, "carol", [raw], "GET", NOON)
    assert d.outcome is Outcome.BLOCKED, (raw, d)


@FAST
@given(social=social_spelling(), other=ANY_TEXT)
def test_another_name_never_hides_a_social_one(policy: Policy, social: str, other: str) -> None:
    """A social name next to any other name (a second Host header, say) blocks the flow."""
    for names in ([social, other], [other, social]):
        d = decide(policy, "carol", names, "GET", NOON)
        assert d.outcome is Outcome.BLOCKED, (names, d)
