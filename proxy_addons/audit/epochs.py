"""Forward-secure sealing: per-worker chain keys that evolve every epoch, and their state file.

The verifier holds a *verification seed* (32 random bytes, written once by `socialgate init`
and kept off the host). Each chain (worker) starts from its own key, derived from the seed,
and every epoch the key takes a one-way step::

    k_0(worker) = HMAC-SHA256(seed, "socialgate epoch key" || 0x00 || worker)
    k_{n+1}     = HMAC-SHA256(k_n, "socialgate epoch step" || n as 8 bytes big-endian)

Records carry the epoch number in ``socialgate.chain.epoch`` and are sealed under ``k_n``.
The host holds only the current ``k_n`` (in a state file under ``socialgate_audit_seal_dir``,
one per worker); the step overwrites the old key, so whoever takes the host later cannot
re-seal anything written in an earlier epoch. The verifier derives every ``k_n`` from the
seed.

Erasure, and its limits (docs/audit-trail.md says the same): the state file has a fixed size;
a step writes the new state to ``<name>.next`` (fsync), then overwrites the old file in place
with it (fsync: on ext4/xfs in their default modes the same blocks are rewritten), then renames
``.next`` over it (fsync of the directory). A crash at any point leaves one intact copy, and
`load_state` takes the newest. What this cannot erase: copies in an ext4 ``data=journal``
journal until it wraps, blocks a copy-on-write file system (btrfs, ZFS) or an SSD's flash
translation layer keeps elsewhere, snapshots, backups and swap. In memory the key is a
``bytearray`` zeroed at the step, but Python and OpenSSL copy keys into objects that are not
wiped (the HMAC context, the bytes of a hex parse); they are freed, not overwritten. The
honest claim is: the old key is gone from the file and from the process's own references.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pathlib
import re
from dataclasses import dataclass
from typing import Any

from proxy_addons.audit.chain import GENESIS, canonical, record_hmac
from proxy_addons.audit.durable import fsync_dir
from proxy_addons.errors import AuditError

SEED_BYTES = 32
_START_LABEL = b"socialgate epoch key\x00"
_STEP_LABEL = b"socialgate epoch step"
STATE_SIZE = 1024  # fixed, so a step overwrites the same bytes of the file
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def initial_key(seed: bytes, worker: str) -> bytes:
    """``k_0`` of ``worker``'s chain."""
    return hmac.new(seed, _START_LABEL + worker.encode("utf-8"), hashlib.sha256).digest()


def step_key(key: bytes | bytearray, n: int) -> bytes:
    """``k_{n+1}`` from ``k_n`` (one way: ``k_n`` cannot be found from the result)."""
    return hmac.new(bytes(key), _STEP_LABEL + n.to_bytes(8, "big"), hashlib.sha256).digest()


class KeySchedule:
    """The verifier's side: ``k_n`` of one worker for any ``n``, derived from the seed."""

    def __init__(self, seed: bytes, worker: str) -> None:
        self._k0 = initial_key(seed, worker)
        self._n = 0
        self._k = self._k0

    def key(self, n: int) -> bytes:
        if n < self._n:  # rare (a problem being reported): start again from k_0
            self._n, self._k = 0, self._k0
        while self._n < n:
            self._k = step_key(self._k, self._n)
            self._n += 1
        return self._k


# --- the seed ---------------------------------------------------------------


def new_seed() -> bytes:
    return os.urandom(SEED_BYTES)


def seed_text(seed: bytes) -> str:
    return seed.hex() + "\n"


def load_seed(path: pathlib.Path) -> bytes:
    """The verification seed file (hex); `AuditError` if missing or malformed."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise AuditError(f"verification seed {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AuditError(f"cannot read verification seed {path}: {e}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise AuditError(f"verification seed {path} is not hex") from None
    if len(seed) != SEED_BYTES:
        raise AuditError(f"verification seed {path} has {len(seed)} bytes, not {SEED_BYTES}")
    return seed


def seed_fingerprint(seed: bytes) -> str:
    """What an investigator compares to know they hold the right seed (not the seed)."""
    return "SHA256:" + hashlib.sha256(b"socialgate seed fingerprint\x00" + seed).hexdigest()[:32]


# --- the host's state: the current key of one worker --------------------------


@dataclass(slots=True)
class EpochState:
    """Where a worker's chain stands in its epochs: the current epoch and its key.

    ``seq``/``hash``: the chain head when the epoch began (the last record of the previous
    epoch, its seal), so a restart can count the epoch's records and recognise its tail.
    """

    worker: str
    epoch: int
    key: bytearray
    start: str  # ISO-8601 UTC: when the epoch began
    seq: int = 0
    hash: str = GENESIS

    def stepped(self, *, start: str, seq: int, hash_: str) -> EpochState:
        """The state of the next epoch; this one's key is zeroed (see the module docstring)."""
        nxt = EpochState(
            self.worker, self.epoch + 1, bytearray(step_key(self.key, self.epoch)), start, seq,
            hash_,
        )  # fmt: skip
        self.wipe()
        return nxt

    def wipe(self) -> None:
        self.key[:] = bytes(len(self.key))

    def text(self) -> bytes:
        body = {
            "worker": self.worker,
            "epoch": self.epoch,
            "key": self.key.hex(),
            "start": self.start,
            "seq": self.seq,
            "hash": self.hash,
        }
        body["sum"] = hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()
        data = (canonical(body) + "\n").encode("utf-8")
        if len(data) > STATE_SIZE:
            raise AuditError(f"epoch state of worker {self.worker!r} too large (long worker name)")
        return data.ljust(STATE_SIZE, b" ")


def state_path(seal_dir: pathlib.Path, worker: str) -> pathlib.Path:
    """One state file per worker: a readable name plus a hash (names may hold any character)."""
    digest = hashlib.sha256(worker.encode("utf-8")).hexdigest()[:12]
    return seal_dir / f"{_SAFE.sub('_', worker)[:80]}-{digest}.state"


def _parse(data: bytes, worker: str) -> EpochState | None:
    try:
        body = json.loads(data.decode("utf-8"))
        sum_ = body.pop("sum")
        if hashlib.sha256(canonical(body).encode("utf-8")).hexdigest() != sum_:
            return None
        if body["worker"] != worker:
            return None
        return EpochState(
            worker, int(body["epoch"]), bytearray.fromhex(body["key"]), str(body["start"]),
            int(body["seq"]), str(body["hash"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return None


def _read(path: pathlib.Path, worker: str) -> EpochState | None:
    try:
        return _parse(path.read_bytes(), worker)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise AuditError(f"cannot read epoch key state {path}: {e.strerror}") from None


def load_state(seal_dir: pathlib.Path, worker: str) -> EpochState:
    """The worker's current state; `AuditError` if it was never enrolled or is unreadable."""
    path = state_path(seal_dir, worker)
    found = [s for s in (_read(path, worker), _read(_next(path), worker)) if s is not None]
    if not found:
        if path.exists():
            raise AuditError(f"epoch key state {path} is damaged (checksum or format)")
        raise AuditError(
            f"no epoch key state for worker {worker!r} in {seal_dir} (enrol it with "
            f"'socialgate init --worker \"{worker}\" --seed FILE', which needs the verification "
            "seed)"
        )
    newest = max(found, key=lambda s: s.epoch)
    for other in found:
        if other is not newest:
            other.wipe()
    if len(found) == 2 or not path.exists():
        store_state(seal_dir, newest)  # finish a step a crash interrupted (erases the other)
    return newest


def _next(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".next")


def _overwrite(path: pathlib.Path, data: bytes, *, create: bool) -> None:
    flags = os.O_WRONLY | (os.O_CREAT if create else 0)  # never O_TRUNC: rewrite in place
    fd = os.open(path, flags, 0o600)
    try:
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def store_state(seal_dir: pathlib.Path, state: EpochState) -> None:
    """Make ``state`` the worker's state, erasing the previous key (module docstring)."""
    path = state_path(seal_dir, state.worker)
    data = state.text()
    try:
        seal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _overwrite(_next(path), data, create=True)
        with contextlib.suppress(FileNotFoundError):
            _overwrite(path, data, create=False)
        os.replace(_next(path), path)
        fsync_dir(seal_dir)
    except OSError as e:
        raise AuditError(f"cannot write epoch key state {path}: {e.strerror}") from None


def enrol(seal_dir: pathlib.Path, seed: bytes, worker: str, start: str) -> bool:
    """Create the worker's epoch-0 state from the seed; False if it exists already."""
    path = state_path(seal_dir, worker)
    if path.exists() or _next(path).exists():
        return False
    store_state(seal_dir, EpochState(worker, 0, bytearray(initial_key(seed, worker)), start))
    return True


def tail_verifies(
    state: EpochState, static_key: bytes | None, record: dict[str, Any], chain: dict[str, Any]
) -> bool:
    """Whether the last record of a log may be continued from ``state`` (at open/append).

    A record of the current epoch verifies under its key; the seal of the previous epoch
    cannot (its key is erased) but must be exactly where the state says that epoch ended;
    a format-1 record (static key) only before the first format-2 record of the chain.
    """
    epoch = chain.get("epoch")
    if epoch is None:
        return (
            static_key is not None
            and state.epoch == 0
            and state.seq in (0, chain["seq"])
            and hmac.compare_digest(record_hmac(static_key, record), chain["hash"])
        )
    if epoch == state.epoch:
        return hmac.compare_digest(record_hmac(bytes(state.key), record), chain["hash"])
    return epoch == state.epoch - 1 and (chain["seq"], chain["hash"]) == (state.seq, state.hash)
