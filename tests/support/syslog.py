"""Syslog receivers for the shipping tests: a real rsyslogd on loopback, and tiny collectors.

`Rsyslog` runs Debian's rsyslogd in the foreground with a private configuration, work
directory and output files under the test's tmp_path (no system-wide daemon, no
``/dev/log``): imudp and imtcp on 127.0.0.1, free ports, every message written twice, in
rsyslog's traditional file format and in RFC 5424 (``RSYSLOG_SyslogProtocol23Format``).

`DatagramCollector` and `TcpCollector` record what a shipper sends, raw, for the
unit tests of the wire format; `TcpCollector` can be stopped and restarted on its port.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

TRADITIONAL = "traditional.log"
RFC5424 = "rfc5424.log"


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback TCP port that refuses connections while in use (bound, never listening),
    so no other process on the machine can start answering on it mid-test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        yield port


def rsyslogd_or_skip() -> str:
    """rsyslogd's path; skips only where it cannot be installed (not root), else fails."""
    found = shutil.which("rsyslogd") or next(
        (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("rsyslogd is not installed (Debian's rsyslog; `make system-deps` as root)")
    pytest.fail("rsyslogd is missing although we are root: `make system-deps` installs rsyslog")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Rsyslog:
    def __init__(self, workdir: pathlib.Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = rsyslogd_or_skip()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.tcp_port = free_port(socket.SOCK_STREAM)
        self.traditional = self.dir / TRADITIONAL
        self.rfc5424 = self.dir / RFC5424
        self.proc: subprocess.Popen[bytes] | None = None
        (self.dir / "rsyslog.conf").write_text(
            f"""\
global(workDirectory="{self.dir}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}")
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")
*.* action(type="omfile" file="{self.traditional}" template="RSYSLOG_TraditionalFileFormat")
*.* action(type="omfile" file="{self.rfc5424}" template="RSYSLOG_SyslogProtocol23Format")
""",
            encoding="utf-8",
        )

    def start(self) -> Rsyslog:
        self.proc = subprocess.Popen(
            [
                self.binary, "-n", "-f", str(self.dir / "rsyslog.conf"),
                "-i", str(self.dir / "rsyslogd.pid"),
            ],
            stdout=(self.dir / "rsyslogd.out").open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        # Ready once a probe sent over TCP reaches the file (UDP is bound by then too).
        wait_for(self._probe, 20, f"rsyslogd to start ({self.output()})")
        return self

    def _probe(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"rsyslogd exited {self.proc.returncode}: {self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1) as s:
                msg = b"<13>1 - - probe - - - probe"
                s.sendall(f"{len(msg)} ".encode() + msg)
        except OSError:
            return False
        time.sleep(0.1)
        return self.traditional.exists() and b"probe" in self.traditional.read_bytes()

    def output(self) -> str:
        out = self.dir / "rsyslogd.out"
        return out.read_text(errors="replace") if out.exists() else ""

    def lines(self, path: pathlib.Path) -> list[str]:
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # rsyslogd flushes its files on TERM
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class DatagramCollector:
    """Records each datagram sent to its socket: `udp` on 127.0.0.1, or `unix` (a private
    ``/dev/log``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received: list[bytes] = []
        threading.Thread(target=self._run, daemon=True).start()

    @classmethod
    def udp(cls) -> DatagramCollector:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return cls(sock)

    @classmethod
    def unix(cls, path: pathlib.Path) -> DatagramCollector:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        return cls(sock)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            self.received.append(data)

    def close(self) -> None:
        self.sock.close()


class TcpCollector:
    """Accepts connections on 127.0.0.1:port and records the bytes of each, in order."""

    def __init__(self, port: int = 0) -> None:
        self.streams: list[bytearray] = []
        self.conns: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", port))
        self.port: int = self.server.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            stream = bytearray()
            self.streams.append(stream)
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn, stream), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, stream: bytearray) -> None:
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            stream.extend(chunk)

    @property
    def data(self) -> bytes:
        return b"".join(bytes(s) for s in self.streams)

    def close(self) -> None:
        """Stop listening and drop every connection (a collector going down)."""
        with contextlib.suppress(OSError):  # wakes accept(): until then the port stays bound
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def octet_frames(data: bytes) -> list[bytes]:
    """Split an RFC 6587 octet-counted stream into its messages (AssertionError if torn)."""
    frames: list[bytes] = []
    while data:
        length, space, rest = data.partition(b" ")
        assert space, f"not octet-counted: {data[:40]!r}"
        assert length.isdigit(), f"not octet-counted: {data[:40]!r}"
        n = int(length)
        assert len(rest) >= n, "torn frame"
        frames.append(rest[:n])
        data = rest[n:]
    return frames
