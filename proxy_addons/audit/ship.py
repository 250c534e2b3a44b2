"""Ship signed checkpoints off the host as they are made: syslog to the journal or a collector.

A root intruder on the proxy host holds the chain key and the signing key, so they can
rewrite the log *and* re-sign the checkpoint file; only checkpoints that already left the
host still show what the chain was. `Shipper` sends each checkpoint, once it is fsynced into
the checkpoint file, as one syslog message to a target given by
``socialgate_checkpoint_syslog`` (`parse_target`):

* ``udp://host:port``: one RFC 5424 datagram per checkpoint (RFC 5426);
* ``tcp://host:port``: RFC 5424 with RFC 6587 octet-counting framing (``LEN SP MSG``);
* ``unix:/dev/log``: the local journal or rsyslog. journald does not parse RFC 5424 on
  ``/dev/log`` (systemd issue 19251: ``1`` would become the identifier), nor does rsyslog's
  ``imuxsock`` by default, so the local socket gets the local format every ``syslog(3)``
  caller sends: ``<PRI>Mmm dd hh:mm:ss socialgate[PID]: MSG``.

The message is ``auth.notice`` (PRI 37), app-name ``socialgate``, msgid ``checkpoint``, no
structured data, and MSG the checkpoint as sorted, ASCII-only JSON (no BOM, nothing a
collector re-encodes; verify re-canonicalises it before checking the signature). ``auth``:
security messages, which Debian's rsyslog files in ``/var/log/auth.log`` and which collectors
forward to the security team as a rule (``authpriv`` is often kept back as private, and
``local0``-``7`` mean whatever a site made them mean); ``notice``: a normal but significant
event, which passes the usual ``*.notice`` forwarding filters where ``info`` may not.

Sending never blocks the caller (the audit writer thread): `offer` puts the checkpoint on a
bounded queue that a thread of its own drains. A slow or unreachable collector is retried with
back-off; when the queue is full the *oldest* unsent checkpoint is dropped (a later checkpoint
proves everything an earlier one does, its hash covering the whole chain before it). Every
failure and drop is counted (`ShipStats`) and said once per outage at WARNING in the
operations log; the checkpoint file stays the source of truth either way.
"""

from __future__ import annotations

import collections
import errno
import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

OPTION = "socialgate_checkpoint_syslog"
APP_NAME = "socialgate"
MSGID = "checkpoint"
FACILITY = 4  # auth: security/authorisation messages
SEVERITY = 5  # notice: normal but significant
PRI = FACILITY * 8 + SEVERITY
CAPACITY = 1000  # checkpoints held while the collector is away (16 h at one a minute)
IO_TIMEOUT = 5.0  # connect or send
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str  # "udp" | "tcp" | "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_target(text: str) -> Target | None:
    """``""``: no shipping; else the target; ValueError saying what is wrong."""
    value = text.strip()
    if not value:
        return None
    if value.startswith("unix:"):
        path = value.removeprefix("unix:")
        if not path.startswith("/"):
            raise ValueError("a unix socket needs an absolute path, e.g. unix:/dev/log")
        return Target("unix", path=path)
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("udp", "tcp"):
        raise ValueError("expected unix:/PATH, udp://HOST:PORT or tcp://HOST:PORT")
    if rest.startswith("["):  # [IPv6]:port
        host, close, tail = rest[1:].partition("]")
        if not close or not tail.startswith(":"):
            raise ValueError("expected [IPv6 address]:PORT")
        port_text = tail[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon:
            raise ValueError("the port is missing (HOST:PORT)")
    if not host or any(c in host for c in "/@ ") or (":" in host and not rest.startswith("[")):
        raise ValueError(f"bad host {host!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} (1-65535)")
    return Target(scheme, host=host, port=int(port_text))


def message_text(body: dict[str, Any]) -> str:
    """The checkpoint as the MSG part: sorted keys, compact, ASCII only."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _header_field(value: str) -> str:
    """A header field of RFC 5424: printable US-ASCII without spaces, or the nil value."""
    cleaned = "".join(c for c in value if "!" <= c <= "~")
    return cleaned[:255] or "-"


def rfc5424(body: dict[str, Any], *, hostname: str, procid: int) -> bytes:
    """``<37>1 TIMESTAMP HOSTNAME socialgate PROCID checkpoint - MSG`` (RFC 5424)."""
    stamp = _header_field(str(body.get("@timestamp", "")))
    head = f"<{PRI}>1 {stamp} {_header_field(hostname)} {APP_NAME} {procid} {MSGID} -"
    return f"{head} {message_text(body)}".encode("ascii")


def local_format(body: dict[str, Any], *, procid: int, now: float) -> bytes:
    """``<37>Mmm dd hh:mm:ss socialgate[PID]: MSG``: what ``/dev/log`` readers parse."""
    t = time.localtime(now)
    stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"<{PRI}>{stamp} {APP_NAME}[{procid}]: {message_text(body)}".encode("ascii")


@dataclass(frozen=True, slots=True)
class ShipStats:
    """What shipping did since start; ``state`` is ``ok``, ``failing`` or ``stopped``."""

    target: str
    state: str
    shipped: int
    pending: int
    dropped: int
    failures: int
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "state": self.state,
            "shipped": self.shipped,
            "pending": self.pending,
            "dropped": self.dropped,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def summary(self) -> str:
        """One line for a status display."""
        text = (
            f"checkpoints to {self.target}: {self.state}, {self.shipped} shipped, "
            f"{self.pending} pending, {self.dropped} dropped"
        )
        return text + (f" (last error: {self.last_error})" if self.last_error else "")


class Shipper:
    """A bounded queue of checkpoints and the thread that sends them to one target."""

    def __init__(
        self,
        target: Target,
        *,
        capacity: int = CAPACITY,
        hostname: str | None = None,
        io_timeout: float = IO_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self._capacity = capacity
        self._hostname = hostname or socket.gethostname()
        self._timeout = io_timeout
        self._clock = clock
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._stop_by = 0.0
        self._shipped = self._dropped = self._failures = 0
        self._outage_failures = 0  # since the last success: > 0 means failing
        self._outage_dropped = 0
        self._last_error = ""

    # --- the caller's side (any thread; never blocks on the network, never raises) ---

    def offer(self, body: dict[str, Any]) -> None:
        """Queue one signed checkpoint for sending."""
        with self._cond:
            if self._stopping:
                self._dropped += 1
                return
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self._drop_one()
            self._queue.append(body)
            self._cond.notify()

    def _drop_one(self) -> None:  # with the lock held
        self._dropped += 1
        self._outage_dropped += 1
        if self._outage_dropped == 1:
            logger.warning(
                "socialgate: checkpoint shipping to %s: %d checkpoints waiting, dropping the "
                "oldest unsent ones (they stay in the checkpoint file)",
                self.target,
                self._capacity,
            )

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="socialgate-checkpoint-ship", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float = 3.0) -> None:
        """Send what is queued for up to ``timeout`` seconds, then stop; the rest is dropped."""
        with self._cond:
            self._stopping = True
            self._stop_by = self._clock() + timeout
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout + self._timeout + 1)
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            self._dropped += left
        if left:
            logger.warning(
                "socialgate: checkpoint shipping to %s stopped with %d checkpoints unsent "
                "(they are in the checkpoint file)",
                self.target,
                left,
            )
        self._disconnect()

    def stats(self) -> ShipStats:
        with self._cond:
            stopped = self._stopping and (self._thread is None or not self._thread.is_alive())
            state = "stopped" if stopped else ("failing" if self._outage_failures else "ok")
            return ShipStats(
                str(self.target),
                state,
                self._shipped,
                len(self._queue),
                self._dropped,
                self._failures,
                self._last_error,
            )

    # --- the sending thread ---------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue or (self._stopping and self._clock() >= self._stop_by):
                    return
                body = self._queue.popleft()
            try:
                self._send(body)
            except Exception as e:  # OSError mostly; a bug must not end shipping silently
                self._disconnect()
                with self._cond:
                    if len(self._queue) < self._capacity:
                        self._queue.appendleft(body)  # kept: it is the oldest unsent
                    else:
                        self._drop_one()
                    self._failed(e)
                self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            with self._cond:
                self._shipped += 1
                if self._outage_failures:
                    logger.warning(
                        "socialgate: checkpoint shipping to %s works again after %d failed "
                        "attempts; %d checkpoints dropped meanwhile",
                        self.target,
                        self._outage_failures,
                        self._outage_dropped,
                    )
                self._outage_failures = self._outage_dropped = 0

    def _pause(self, seconds: float) -> None:
        """Wait before the next attempt; new checkpoints do not cut it short, a close does."""
        with self._cond:
            end = self._clock() + seconds
            while True:
                if self._stopping:
                    end = min(end, self._stop_by)
                remaining = end - self._clock()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def _failed(self, error: Exception) -> None:  # with the lock held
        self._failures += 1
        self._outage_failures += 1
        text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        self._last_error = text or type(error).__name__
        if self._outage_failures == 1:
            logger.warning(
                "socialgate: checkpoint shipping to %s failing (%s); retrying, checkpoints "
                "stay in the checkpoint file",
                self.target,
                self._last_error,
            )

    def _send(self, body: dict[str, Any]) -> None:
        t = self.target
        if t.scheme == "unix":
            data = local_format(body, procid=os.getpid(), now=time.time())
        else:
            data = rfc5424(body, hostname=self._hostname, procid=os.getpid())
        if t.scheme == "tcp":
            data = f"{len(data)} ".encode("ascii") + data  # RFC 6587 octet counting
        sock = self._connected()
        if t.scheme == "tcp":
            sock.sendall(data)
        else:
            sock.send(data)

    def _connected(self) -> socket.socket:
        sock = self._sock
        if sock is not None and self.target.scheme == "tcp" and _peer_closed(sock):
            self._disconnect()  # the collector restarted: do not write into a dead stream
            sock = None
        if sock is None:
            sock = self._sock = self._connect()
        return sock

    def _connect(self) -> socket.socket:
        t = self.target
        if t.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.settimeout(self._timeout)
            try:
                sock.connect(t.path)
            except OSError:
                sock.close()
                raise
            return sock
        if t.scheme == "tcp":
            sock = socket.create_connection((t.host, t.port), timeout=self._timeout)
            sock.settimeout(self._timeout)
            return sock
        infos = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(errno.EHOSTUNREACH, f"no address for {t.host}")
        family, type_, proto, _, addr = infos[0]
        sock = socket.socket(family, type_, proto)
        sock.settimeout(self._timeout)
        try:
            sock.connect(addr)  # connected: an ICMP refusal shows up on a later send
        except OSError:
            sock.close()
            raise
        return sock

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _peer_closed(sock: socket.socket) -> bool:
    """A syslog collector never writes to us: a readable stream means it closed or reset."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except OSError:
        return True
