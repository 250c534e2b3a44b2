"""Request limits (class 9): which request breaks which limit, and option validation."""

from __future__ import annotations

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow, tutils

from proxy_addons.addons.limits import RequestLimits, check_request
from proxy_addons.limits import Limits, Violation

L = Limits()


def request(path_len: int = 1, fields: list[tuple[str, int]] | None = None) -> http.Request:
    """A request with a path of ``path_len`` bytes and fields of the given "name: value" sizes."""
    req = tutils.treq(path=b"/" + b"a" * (path_len - 1))
    req.headers.clear()
    for name, size in fields or [("host", 20)]:
        req.headers.add(name, "v" * (size - len(name) - 2))
    return req


def option_of(v: Violation | None) -> str | None:
    return v.option if v else None


@pytest.mark.parametrize(
    ("req", "option", "status"),
    [
        # request target: at the limit / one byte over
        (request(L.request_target), None, None),
        (request(L.request_target + 1), "socialgate_max_request_target", 414),
        # number of fields
        (request(fields=[(f"x-{i:03d}", 10) for i in range(L.header_fields)]), None, None),
        (
            request(fields=[(f"x-{i:03d}", 10) for i in range(L.header_fields + 1)]),
            "socialgate_max_header_fields",
            431,
        ),
        # one field's size ("name: value")
        (request(fields=[("cookie", L.header_field_size)]), None, None),
        (
            request(fields=[("cookie", L.header_field_size + 1)]),
            "socialgate_max_header_field_size",
            431,
        ),
        # the whole block (each field plus CRLF)
        (request(fields=[(f"x-{i}", L.header_block // 4 - 2) for i in range(4)]), None, None),
        (
            request(fields=[(f"x-{i}", L.header_block // 4 - 1) for i in range(4)]),
            "socialgate_max_header_block",
            431,
        ),
    ],
)
def test_check(req: http.Request, option: str | None, status: int | None) -> None:
    """Each limit admits a request exactly at it and refuses one byte or field over."""
    v = check_request(req, L)
    assert option_of(v) == option
    assert (v.status if v else None) == status


def addon() -> RequestLimits:
    return RequestLimits(lambda *_: None, lambda _: False)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("socialgate_max_request_target", 0),
        ("socialgate_max_request_target", 255),
        ("socialgate_max_header_fields", 15),
        ("socialgate_max_header_fields", 10_001),
        ("socialgate_max_header_field_size", -1),
        ("socialgate_max_header_block", 4095),
    ],
)
def test_out_of_range_option_is_refused(option: str, value: int) -> None:
    """A limit outside its range is an OptionsError naming the option and the value."""
    a = addon()
    with taddons.context(a) as tctx, pytest.raises(exceptions.OptionsError) as e:
        tctx.configure(a, **{option: value})
    assert f"{option}={value}" in str(e.value)


def test_field_size_over_block_is_refused() -> None:
    """One field may not be allowed more than the whole block."""
    a = addon()
    with taddons.context(a) as tctx, pytest.raises(exceptions.OptionsError) as e:
        tctx.configure(a, socialgate_max_header_field_size=70_000)
    assert "socialgate_max_header_field_size=70000" in str(e.value)


def test_configured_limits_apply() -> None:
    """A valid value takes effect."""
    a = addon()
    with taddons.context(a) as tctx:
        tctx.configure(a, socialgate_max_request_target=1024)
        f = tflow.tflow(req=request(1025))
        a.requestheaders(f)
    assert f.response is not None
    assert f.response.status_code == 414


def test_refusal_with_streaming_body_is_killed() -> None:
    """A refused request whose body may stream is killed, not answered."""
    a = RequestLimits(lambda *_: "SG-REF", lambda _: True)
    with taddons.context(a):
        f = tflow.tflow(req=request(L.request_target + 1))
        a.requestheaders(f)
    assert f.response is None
    assert f.error is not None


def test_recorder_failure_kills_the_request() -> None:
    """If the refusal cannot be handled, the request is killed (fail closed)."""

    def boom(*_: object) -> str:
        raise RuntimeError("boom")

    a = RequestLimits(boom, lambda _: False)
    with taddons.context(a):
        f = tflow.tflow(req=request(L.request_target + 1))
        a.requestheaders(f)
    assert f.error is not None
