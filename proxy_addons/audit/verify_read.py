"""Reading log files for `verify`: strict lines, the key of each record, file heads.

Every line is parsed strictly (`chain.parse_line`) and its HMAC checked under the key its
format calls for (`Keys`): the static chain key for format 1, the epoch's key derived from
the verification seed for format 2 (forward-secure sealing).
"""

from __future__ import annotations

import gzip
import hmac
import pathlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from proxy_addons.audit.chain import chain_of, parse_line, record_hmac
from proxy_addons.audit.epochs import KeySchedule
from proxy_addons.audit.files import is_compressed
from proxy_addons.errors import AuditError


@dataclass(frozen=True, slots=True)
class Entry:
    line: int
    chain: dict[str, Any] | None  # None: the line is not a record
    error: str = ""
    torn: bool = False  # last line without its newline
    hmac_ok: bool = False
    record: dict[str, Any] | None = None


class Keys:
    """The key of each record: the static key (format 1) or its epoch's, from the seed."""

    def __init__(self, key: bytes | None, seed: bytes | None) -> None:
        self.key, self.seed = key, seed
        self._schedules: dict[str, KeySchedule] = {}

    def of(self, chain: dict[str, Any]) -> bytes:
        epoch = chain.get("epoch")
        if epoch is None:
            if self.key is None:
                raise AuditError(
                    f"records of worker {chain['worker']!r} are sealed with the static chain "
                    "key (format 1): give it with --key"
                )
            return self.key
        if self.seed is None:
            raise AuditError(
                f"records of worker {chain['worker']!r} are forward-sealed (epochs): give the "
                "verification seed with --seed"
            )
        schedule = self._schedules.get(chain["worker"])
        if schedule is None:
            schedule = self._schedules[chain["worker"]] = KeySchedule(self.seed, chain["worker"])
        return schedule.key(epoch)


def open_log(path: pathlib.Path) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if is_compressed(path) else path.open("rb")


def entries(path: pathlib.Path, keys: Keys | None) -> Iterator[Entry]:
    with open_log(path) as fh:
        lineno = 0
        try:
            for lineno, raw in enumerate(fh, 1):
                torn = not raw.endswith(b"\n")
                try:
                    if torn:
                        raise ValueError("incomplete last line")
                    record = parse_line(raw[:-1].decode("utf-8"))
                    chain = chain_of(record)
                except (ValueError, UnicodeDecodeError) as e:
                    yield Entry(lineno, None, str(e), torn)
                    continue
                ok = keys is not None and hmac.compare_digest(
                    record_hmac(keys.of(chain), record), chain["hash"]
                )
                yield Entry(lineno, chain, hmac_ok=ok, record=record)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            # A damaged compressed file: what follows cannot be read, which is damage.
            yield Entry(lineno + 1, None, f"cannot decompress further ({e})")


def is_empty(path: pathlib.Path) -> bool:
    if not is_compressed(path):
        return path.stat().st_size == 0
    try:
        with gzip.open(path, "rb") as gz:
            return not gz.read(1)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return False


def head(path: pathlib.Path) -> tuple[str, int] | None:
    """(worker, seq) of the first record of a file, for ordering."""
    for entry in entries(path, None):
        if entry.chain is not None:
            return entry.chain["worker"], entry.chain["seq"]
    return None
