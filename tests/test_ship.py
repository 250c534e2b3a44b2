"""The checkpoint shipper: targets, the syslog wire format, sending without ever blocking."""

from __future__ import annotations

import json
import logging
import pathlib
import re
import socket
import time

import pytest

from proxy_addons.audit import checkpoints as cps
from proxy_addons.audit.ship import Shipper, Target, local_format, parse_target, rfc5424
from tests.support.syslog import (
    DatagramCollector,
    TcpCollector,
    free_port,
    octet_frames,
    refused_port,
    wait_for,
)

BODY = {
    "@timestamp": "2026-11-25T10:00:00.123456Z", "worker": "proxy1:audit.jsonl", "n": 7,
    "seq": 7000, "hash": "ab" * 32, "file": "audit.jsonl", "public_key": "cd" * 32,
    "signature": "ef" * 64,
}  # fmt: skip


def body(n: int) -> dict[str, object]:
    return {**BODY, "n": n, "seq": 1000 * n}


def shipped_numbers(messages: list[bytes]) -> list[int]:
    return [json.loads(m[m.index(b"{") :])["n"] for m in messages]


# --- targets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("unix:/dev/log", Target("unix", path="/dev/log")),
        ("udp://127.0.0.1:514", Target("udp", host="127.0.0.1", port=514)),
        ("tcp://collector.example.org:6514", Target("tcp", "collector.example.org", 6514)),
        ("tcp://[::1]:6514", Target("tcp", host="::1", port=6514)),
        ("  udp://localhost:1 ", Target("udp", host="localhost", port=1)),
    ],
)
def test_target_parsed(text: str, target: Target) -> None:
    """Each accepted spelling names its transport, host and port (or socket path)."""
    assert parse_target(text) == target
    assert parse_target(str(target)) == target


def test_empty_target_means_no_shipping() -> None:
    """The default, "", ships nothing."""
    assert parse_target("") is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("unix:dev/log", "absolute path"),
        ("syslog://h:514", "expected unix:/PATH"),
        ("collector:514", "expected unix:/PATH"),
        ("udp://collector", "port is missing"),
        ("tcp://collector:0", "bad port '0'"),
        ("tcp://collector:65536", "bad port '65536'"),
        ("tcp://collector:http", "bad port 'http'"),
        ("tcp://:514", "bad host ''"),
        ("tcp://user@collector:514", "bad host"),
        ("tcp://::1:514", "bad host"),
        ("tcp://[::1]514", "expected [IPv6 address]:PORT"),
    ],
)
def test_bad_target_refused(text: str, words: str) -> None:
    """A value that names no syslog target is a ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_target(text)


# --- the wire format ---------------------------------------------------------------


def test_rfc5424_message() -> None:
    """auth.notice, version 1, the checkpoint's time, app-name, procid, msgid, no SD, JSON."""
    msg = rfc5424(BODY, hostname="proxy1", procid=812)
    head, _, payload = msg.partition(b" - ")
    assert head == b"<37>1 2026-11-25T10:00:00.123456Z proxy1 socialgate 812 checkpoint"
    assert json.loads(payload) == BODY


def test_message_is_ascii_json() -> None:
    """A non-ASCII worker name is escaped: the message is ASCII, no BOM, same checkpoint."""
    msg = rfc5424({**BODY, "worker": "prøxy"}, hostname="prøxy host", procid=1)
    assert msg.isascii()
    assert b" prxyhost socialgate " in msg  # header fields: printable ASCII, no spaces
    assert json.loads(msg[msg.index(b"{") :])["worker"] == "prøxy"


def test_local_socket_format() -> None:
    """/dev/log gets what syslog(3) sends: PRI, local time, socialgate[pid]:, the JSON."""
    msg = local_format(BODY, procid=812, now=time.time())
    assert re.fullmatch(rb"<37>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d socialgate\[812\]: \{.*\}", msg)


# --- sending -----------------------------------------------------------------------


def test_udp_one_datagram_per_checkpoint() -> None:
    """Each checkpoint is one RFC 5424 datagram, in the order made."""
    collector = DatagramCollector.udp()
    shipper = Shipper(Target("udp", "127.0.0.1", collector.port))
    shipper.start()
    for n in (1, 2, 3):
        shipper.offer(body(n))
    wait_for(lambda: len(collector.received) == 3, 5, "3 datagrams")
    shipper.close()
    assert all(m.startswith(b"<37>1 ") for m in collector.received)
    assert shipped_numbers(collector.received) == [1, 2, 3]
    assert shipper.stats().shipped == 3


def test_tcp_octet_counted_frames() -> None:
    """Over TCP each message is framed as LEN SP MSG (RFC 6587)."""
    collector = TcpCollector()
    shipper = Shipper(Target("tcp", "127.0.0.1", collector.port))
    shipper.start()
    for n in (1, 2, 3):
        shipper.offer(body(n))
    wait_for(lambda: len(collector.data) > 0 and _frames(collector) == 3, 5, "3 frames")
    shipper.close()
    frames = octet_frames(collector.data)
    assert all(f.startswith(b"<37>1 ") for f in frames)
    assert shipped_numbers(frames) == [1, 2, 3]


def _frames(collector: TcpCollector) -> int:
    try:
        return len(octet_frames(collector.data))
    except AssertionError:
        return 0  # a frame still arriving


def test_unix_socket_local_format(tmp_path: pathlib.Path) -> None:
    """unix:PATH sends datagrams in the local format to the socket."""
    collector = DatagramCollector.unix(tmp_path / "log.sock")
    shipper = Shipper(Target("unix", path=str(tmp_path / "log.sock")))
    shipper.start()
    shipper.offer(body(1))
    wait_for(lambda: len(collector.received) == 1, 5, "1 datagram")
    shipper.close()
    assert re.match(rb"<37>\w{3} .* socialgate\[\d+\]: \{", collector.received[0])


def test_collector_down_then_up_delivers_in_order(caplog: pytest.LogCaptureFixture) -> None:
    """While the collector is down checkpoints wait (counted, one WARNING); then all arrive."""
    port = free_port(socket.SOCK_STREAM)
    shipper = Shipper(Target("tcp", "127.0.0.1", port))
    with caplog.at_level(logging.WARNING, logger="proxy_addons.audit.ship"):
        shipper.start()
        for n in (1, 2, 3):
            shipper.offer(body(n))
        wait_for(lambda: shipper.stats().failures >= 2, 10, "two failed attempts")
        down = shipper.stats()
        collector = TcpCollector(port)
        wait_for(lambda: _frames(collector) == 3, 15, "3 frames after the collector came up")
        shipper.close()
    assert (down.state, down.pending, down.shipped) == ("failing", 3, 0)
    assert "Connection refused" in down.last_error
    assert shipped_numbers(octet_frames(collector.data)) == [1, 2, 3]
    failing = [r for r in caplog.records if "failing" in r.getMessage()]
    assert [r.levelno for r in failing] == [logging.WARNING]
    assert any("works again" in r.getMessage() for r in caplog.records)
    collector.close()


def test_full_queue_drops_the_oldest() -> None:
    """Past the bound the oldest unsent checkpoint is dropped and counted; newer ones kept."""
    port = free_port(socket.SOCK_STREAM)
    shipper = Shipper(Target("tcp", "127.0.0.1", port), capacity=3)
    shipper.start()
    for n in range(1, 6):
        shipper.offer(body(n))
    stats = shipper.stats()
    assert (stats.pending, stats.dropped) == (3, 2)
    collector = TcpCollector(port)
    wait_for(lambda: _frames(collector) == 3, 15, "the 3 kept checkpoints")
    shipper.close()
    assert shipped_numbers(octet_frames(collector.data)) == [3, 4, 5]
    collector.close()


def test_offer_never_waits_for_the_network() -> None:
    """Handing over checkpoints while the collector is unreachable takes no time."""
    with refused_port() as port:
        shipper = Shipper(Target("tcp", "127.0.0.1", port))
        shipper.start()
        started = time.perf_counter()
        for n in range(2000):
            shipper.offer(body(n))
        elapsed = time.perf_counter() - started
        shipper.close(timeout=0)
    assert elapsed < 0.5
    assert shipper.stats().dropped == 2000 - shipper.stats().shipped


def test_close_gives_up_after_its_deadline(caplog: pytest.LogCaptureFixture) -> None:
    """Closing with the collector away returns in time and counts what stayed unsent."""
    with refused_port() as port, caplog.at_level(logging.WARNING, "proxy_addons.audit.ship"):
        shipper = Shipper(Target("tcp", "127.0.0.1", port))
        shipper.start()
        shipper.offer(body(1))
        started = time.monotonic()
        shipper.close(timeout=1.0)
    assert time.monotonic() - started < 3
    stats = shipper.stats()
    assert (stats.state, stats.shipped, stats.dropped) == ("stopped", 0, 1)
    assert "1 checkpoints unsent" in caplog.text


def test_collector_restart_loses_nothing() -> None:
    """A collector that restarts between checkpoints gets the next one on a new connection."""
    first = TcpCollector()
    shipper = Shipper(Target("tcp", "127.0.0.1", first.port))
    shipper.start()
    shipper.offer(body(1))
    wait_for(lambda: _frames(first) == 1, 5, "the first checkpoint")
    first.close()
    second = TcpCollector(first.port)
    time.sleep(0.2)  # the old connection's FIN has arrived
    shipper.offer(body(2))
    wait_for(lambda: _frames(second) == 1, 10, "the second checkpoint, on a new connection")
    shipper.close()
    assert shipped_numbers(octet_frames(second.data)) == [2]
    second.close()


# --- the hand-over from the checkpoint file ----------------------------------------


def test_appended_checkpoints_are_handed_to_the_shipper(tmp_path: pathlib.Path) -> None:
    """Each checkpoint appended to the watched file goes to the shipper, after it is written."""
    path = tmp_path / "audit.checkpoints"
    seen: list[tuple[dict[str, object], int]] = []
    undo = cps.ship_appends(path, lambda b: seen.append((b, len(path.read_text().splitlines()))))
    cps.append_checkpoint(path, body(1))
    cps.append_checkpoint(tmp_path / "other.checkpoints", body(2))
    undo()
    cps.append_checkpoint(path, body(3))
    assert seen == [(body(1), 1)]


def test_failing_shipper_never_costs_the_checkpoint(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A shipper that raises is logged; the checkpoint is in the file all the same."""
    path = tmp_path / "audit.checkpoints"

    def broken(_: dict[str, object]) -> None:
        raise RuntimeError("boom")

    undo = cps.ship_appends(path, broken)
    try:
        cps.append_checkpoint(path, body(1))
    finally:
        undo()
    assert len(path.read_text().splitlines()) == 1
    assert "cannot hand a checkpoint to the shipper" in caplog.text
