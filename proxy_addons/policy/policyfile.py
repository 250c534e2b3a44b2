"""Reading the policy file: the size cap, the encoding, one wording for each problem.

The proxy (at start and on every reload), the loader and the exemption
editor all read the file through here, so an admin sees the same message
whichever of them met the problem first.
"""

from __future__ import annotations

from pathlib import Path

from proxy_addons.errors import PolicyError
from proxy_addons.fileio import read_capped

# A policy is a few hundred KB at most; the cap keeps a mistaken file (a log,
# a dump) from stalling the proxy. Category lists may legitimately be huge.
MAX_POLICY_BYTES = 5 * 1024 * 1024
MAX_CATEGORY_BYTES = 512 * 1024 * 1024


def megabytes(n: int) -> str:
    return f"{n // (1024 * 1024)} MB"


TOO_LARGE = f"policy file is larger than {megabytes(MAX_POLICY_BYTES)}"
NOT_UTF8 = "policy file is not UTF-8 text"


def line_of_byte(data: bytes, offset: int) -> int:
    """The 1-based line holding ``data[offset]`` (where a decode error points)."""
    return data.count(b"\n", 0, offset) + 1


def unreadable(shown: str, e: OSError) -> PolicyError:
    return PolicyError([(shown, 0, f"cannot read policy file: {e.strerror or e}")])


def check_size(size: int, shown: str) -> None:
    if size > MAX_POLICY_BYTES:
        raise PolicyError([(shown, 0, TOO_LARGE)])


def decode_policy(data: bytes, shown: str) -> str:
    """The policy text of ``data`` (read with `read_capped`); `PolicyError` if too large
    or not UTF-8. ``shown`` names the file in messages."""
    check_size(len(data), shown)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError([(shown, line_of_byte(data, e.start), NOT_UTF8)]) from None


def read_policy_file(path: Path, shown: str | None = None) -> tuple[str, bytes]:
    """(text, bytes) of the policy file at ``path``; every failure is a `PolicyError`."""
    name = str(path) if shown is None else shown
    try:
        data = read_capped(path, MAX_POLICY_BYTES)
    except OSError as e:
        raise unreadable(name, e) from None
    return decode_policy(data, name), data
