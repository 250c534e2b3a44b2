"""Appending records from another process (the admin CLI) to a chain file.

Decision: the CLI writes its own chain file (``logs/admin-audit.jsonl`` by
convention), never the proxy's live log. The proxy holds an exclusive lock on
its live file for as long as it runs, so `append_records` on it fails with a
clear error instead of racing the writer thread. Concurrent CLI invocations
on the admin file serialise on the same ``flock`` and each re-reads the tail
under the lock before continuing the chain. `verify` treats the admin file as
one more worker's chain.

With forward-secure sealing (``seal_dir``), every append is an epoch of the admin chain: the
records, then an ``epoch-sealed`` record (reason ``append``) under that epoch's key, then
the key steps. The host never keeps a key that could re-seal an admin record already written.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import pathlib
import socket
import time
from collections.abc import Sequence

from proxy_addons.audit import checkpoints as cps
from proxy_addons.audit.durable import fsync_dir, write_all
from proxy_addons.audit.epochs import EpochState, load_state, store_state, tail_verifies
from proxy_addons.audit.files import default_checkpoints_path
from proxy_addons.audit.keys import load_secret, load_signing_key
from proxy_addons.audit.record import EPOCH_SEALED, Record, epoch_sealed_record, timestamp
from proxy_addons.audit.sink import Renderer
from proxy_addons.audit.tail import read_tail
from proxy_addons.errors import AuditError
from proxy_addons.paths import DEFAULT_ADMIN_LOG

LOCK_WAIT_SECONDS = 5.0


def _lock(fd: int, path: pathlib.Path) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise AuditError(
                    f"audit log {path} is locked by another process (the proxy's live log? "
                    f"admin records go to {DEFAULT_ADMIN_LOG})"
                ) from None
            time.sleep(0.05)


def append_records(
    log_path: pathlib.Path,
    records: Sequence[Record],
    *,
    key_path: pathlib.Path,
    signing_key_path: pathlib.Path | None = None,
    checkpoints_path: pathlib.Path | None = None,
    worker: str | None = None,
    seal_dir: pathlib.Path | None = None,
) -> None:
    """Append ``records`` to the chain in ``log_path``, fsynced, under an exclusive lock.

    With ``signing_key_path``, also signs a checkpoint of the new chain head
    (into ``checkpoints_path``, default ``<log name>.checkpoints``) so a later
    truncation of the file is detectable. Raises `AuditError`.
    """
    if not records:
        return
    # Never generated here: a key made by the CLI would seal a chain nobody else can verify.
    sealing = seal_dir is not None
    key = load_secret(key_path, "audit key") if not sealing or key_path.exists() else None
    signing = load_signing_key(signing_key_path) if signing_key_path else None
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    except OSError as e:
        raise AuditError(f"cannot open audit log {log_path}: {e.strerror}") from None
    try:
        _lock(fd, log_path)
        created = os.fstat(fd).st_size == 0
        chain_worker = worker or f"{socket.gethostname()}:{log_path.name}"
        states: list[EpochState] = []

        def check(record: Record, chain: dict[str, object]) -> bool:
            assert seal_dir is not None
            states.append(load_state(seal_dir, str(chain["worker"])))
            return tail_verifies(states[-1], key, record, chain)

        if sealing:
            tail = read_tail(log_path, check)
            chain_worker = tail.worker or chain_worker
            state = states[-1] if states else load_state(seal_dir, chain_worker)  # type: ignore[arg-type]
        else:
            assert key is not None
            tail = read_tail(log_path, key)
            chain_worker = tail.worker or chain_worker
        now = dt.datetime.now(dt.UTC)
        if sealing:
            if tail.action == EPOCH_SEALED and tail.epoch == state.epoch:  # the step a crash lost
                state = state.stepped(start=timestamp(now), seq=tail.seq, hash_=tail.hash)
            elif tail.epoch is None and tail.seq and state.seq != tail.seq:
                state.seq, state.hash = tail.seq, tail.hash  # format 1 continued as format 2
            renderer = Renderer(bytes(state.key), state.epoch)
        else:
            assert key is not None
            renderer = Renderer(key)
        chunks = [b"\n"] if tail.torn else []
        seq, prev = tail.seq, tail.hash
        for i, record in enumerate(records):
            brk = tail.torn_break() if i == 0 and tail.torn else None
            try:
                data, prev = renderer.render(record, chain_worker, seq + 1, prev, brk)
            except (TypeError, ValueError) as e:
                raise AuditError(f"audit record rejected: {e}") from None
            seq += 1
            chunks.append(data)
        if sealing:
            seal = epoch_sealed_record(
                chain_worker,
                {
                    "n": state.epoch, "start": state.start, "end": timestamp(now),
                    "records": seq - state.seq, "first_seq": state.seq + 1, "last_hash": prev,
                    "reason": "append",
                },
                now=now,
            )  # fmt: skip
            data, prev = renderer.render(seal, chain_worker, seq + 1, prev)
            seq += 1
            chunks.append(data)
        write_all(fd, b"".join(chunks))
        os.fsync(fd)
        if created:
            fsync_dir(log_path.parent)
        if sealing:
            assert seal_dir is not None
            store_state(seal_dir, state.stepped(start=timestamp(now), seq=seq, hash_=prev))
        if signing is not None:
            cp_path = checkpoints_path or default_checkpoints_path(log_path)
            n = cps.last_checkpoint_number(cp_path, chain_worker) + 1
            body = cps.sign(
                signing, worker=chain_worker, n=n, seq=seq, hash_=prev,
                log_name=log_path.name, now=dt.datetime.now(dt.UTC),
            )  # fmt: skip
            cps.append_checkpoint(cp_path, body)
    except OSError as e:
        raise AuditError(f"cannot append to audit log {log_path}: {e.strerror}") from None
    finally:
        os.close(fd)  # releases the lock
