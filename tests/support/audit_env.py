"""Helpers shared by the audit tests (no tests here): a writer on a temp dir, records, verify."""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy_addons.audit import epochs
from proxy_addons.audit.keys import load_or_create_secret, load_or_create_signing_key
from proxy_addons.audit.record import Record, event_record
from proxy_addons.audit.verify import VerifyReport, series, verify_logs
from proxy_addons.audit.writer import ChainWriter, WriterConfig

WHEN = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def rec(i: int, user: str = "alice") -> Record:
    return event_record(
        "reminder-acknowledged", f"record {i}", now=WHEN, category=["web"], type_=["info"],
        user=user,
    )  # fmt: skip


class Env:
    """A temp deployment: logs/ and keys/ kept apart, as in production."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.log = root / "logs" / "audit.jsonl"
        self.key_path = root / "keys" / "audit-hmac.key"
        self.signing_path = root / "keys" / "audit-signing.key"
        self.pub_path = root / "keys" / "audit-signing.pub"
        self.checkpoints = root / "logs" / "audit.checkpoints"
        self.key = load_or_create_secret(self.key_path)
        self.signing: Ed25519PrivateKey = load_or_create_signing_key(self.signing_path)

    def config(self, **kw: Any) -> WriterConfig:
        base: dict[str, Any] = {
            "path": self.log,
            "worker": "",
            "checkpoints_path": self.checkpoints,
            "checkpoint_records": 0,
            "checkpoint_seconds": 0,
        }
        base.update(kw)
        return WriterConfig(**base)

    def lifecycle(self, i: int) -> Record:
        """The start (0) and stop (-1) records `writer` and `writing` use."""
        return rec(i)

    def writer(self, **kw: Any) -> ChainWriter:
        w = ChainWriter(self.config(**kw), self.key, self.signing, default_worker="w1")
        w.open(self.lifecycle(0))
        return w

    @contextmanager
    def writing(self, **kw: Any) -> Iterator[ChainWriter]:
        w = self.writer(**kw)
        try:
            yield w
        finally:
            w.close(self.lifecycle(-1))

    def write(self, n: int, **kw: Any) -> None:
        """Open, write n records (each waited for), close: n + 2 records with start/stop."""
        with self.writing(**kw) as w:
            for i in range(1, n + 1):
                fut = w.submit(rec(i))
                assert fut is not None
                fut.result(timeout=10)

    def files(self) -> list[pathlib.Path]:
        return series(self.log)

    def verify(self, files: list[pathlib.Path] | None = None, **kw: Any) -> VerifyReport:
        kw.setdefault("checkpoints_path", self.checkpoints if self.checkpoints.exists() else None)
        kw.setdefault("public_key_path", self.pub_path)
        return verify_logs(files or self.files(), key_path=self.key_path, **kw)


def drop_mitmproxy_log_handlers() -> None:
    """taddons leaves mitmproxy's log handler on the root logger bound to a closed loop."""
    from mitmproxy.log import MitmLogHandler

    for h in list(logging.getLogger().handlers):
        if isinstance(h, MitmLogHandler):
            h.uninstall()


def rec_now(i: int, user: str = "alice") -> Record:
    """A record stamped now (sealed epochs are bound to time)."""
    return event_record(
        "reminder-acknowledged", f"record {i}", now=dt.datetime.now(dt.UTC), category=["web"],
        type_=["info"], user=user,
    )  # fmt: skip


class SealedEnv(Env):
    """Env with forward-secure sealing: a seed kept apart, worker w1 enrolled in seal/."""

    worker = "w1"

    def __init__(self, root: pathlib.Path, epoch_seconds: float = 0.3) -> None:
        super().__init__(root)
        self.seed_path = root / "offline" / "verification.seed"
        self.seed_path.parent.mkdir(parents=True, exist_ok=True)
        self.seed = epochs.new_seed()
        self.seed_path.write_text(epochs.seed_text(self.seed), encoding="ascii")
        self.seal_dir = root / "logs" / "seal"
        self.epoch_seconds = epoch_seconds
        epochs.enrol(self.seal_dir, self.seed, self.worker, "2026-01-01T00:00:00.000000Z")

    @property
    def state_file(self) -> pathlib.Path:
        return epochs.state_path(self.seal_dir, self.worker)

    def state(self) -> epochs.EpochState:
        return epochs.load_state(self.seal_dir, self.worker)

    def config(self, **kw: Any) -> WriterConfig:
        kw.setdefault("seal_dir", self.seal_dir)
        kw.setdefault("epoch_seconds", self.epoch_seconds)
        kw.setdefault("worker", self.worker)
        return super().config(**kw)

    def lifecycle(self, i: int) -> Record:
        return rec_now(i)  # sealed epochs are bound to time: records dated now

    def submit(self, w: ChainWriter, i: int) -> None:
        fut = w.submit(rec_now(i))
        assert fut is not None
        fut.result(timeout=10)

    def verify(self, files: list[pathlib.Path] | None = None, **kw: Any) -> VerifyReport:
        kw.setdefault("checkpoints_path", self.checkpoints if self.checkpoints.exists() else None)
        kw.setdefault("public_key_path", self.pub_path)
        kw.setdefault("seed_path", self.seed_path)
        kw.setdefault("key_path", None)
        return verify_logs(files or self.files(), **kw)
