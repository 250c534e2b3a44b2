"""Key files of the audit trail: the chain HMAC key and the checkpoint signing key.

Both live apart from the log (default ``keys/``), so whoever can rewrite the
log cannot also re-seal it from the same directory. A missing key is
generated with mode 0600 and announced loudly: without a copy of it, nobody
can verify the trail later.
"""

from __future__ import annotations

import logging
import os
import pathlib
import secrets

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from proxy_addons.errors import AuditError

logger = logging.getLogger(__name__)

SECRET_BYTES = 32


def _create_private_file(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: two processes starting at once must not each write their own key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: pathlib.Path, what: str, *, secret: bool = True) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise AuditError(f"cannot read {what} {path}: {e.strerror}") from None
    mode = path.stat().st_mode
    if secret and mode & 0o077:
        logger.warning("socialgate audit: %s %s is readable by others (mode %o)", what, path, mode)
    return data


def load_secret(path: pathlib.Path, what: str = "audit key") -> bytes:
    """Read a hex secret (the chain HMAC key or the pseudonymisation key)."""
    text = _read(path, what).decode("ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AuditError(f"{what} {path} is not a hex key") from None
    if len(key) < 16:
        raise AuditError(f"{what} {path} is too short ({len(key)} bytes, need at least 16)")
    return key


def load_or_create_secret(path: pathlib.Path, what: str = "audit key") -> bytes:
    """The secret at ``path``, generated (mode 0600) if the file does not exist."""
    try:
        _create_private_file(path, secrets.token_hex(SECRET_BYTES).encode("ascii") + b"\n")
    except FileExistsError:
        pass
    except OSError as e:
        raise AuditError(f"cannot create {what} {path}: {e.strerror}") from None
    else:
        logger.warning(
            "socialgate audit: generated a new %s at %s (mode 0600). Keep a copy off this host: "
            "without it the audit trail cannot be verified.",
            what,
            path,
        )
    return load_secret(path, what)


def public_key_path(signing_key_path: pathlib.Path) -> pathlib.Path:
    return signing_key_path.with_name(signing_key_path.name.removesuffix(".key") + ".pub")


def public_key_text(key: Ed25519PublicKey) -> str:
    """Raw 32-byte public key, hex: short enough to embed in every checkpoint."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def load_signing_key(path: pathlib.Path) -> Ed25519PrivateKey:
    data = _read(path, "checkpoint signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise AuditError(f"checkpoint signing key {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"checkpoint signing key {path} is not an Ed25519 key")
    return key


def load_or_create_signing_key(path: pathlib.Path) -> Ed25519PrivateKey:
    """The Ed25519 key at ``path``, generated if absent (public key written beside it)."""
    if path.exists():
        return load_signing_key(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        _create_private_file(path, pem)
    except FileExistsError:
        return load_signing_key(path)
    except OSError as e:
        raise AuditError(f"cannot create checkpoint signing key {path}: {e.strerror}") from None
    pub = public_key_path(path)
    pub.write_text(public_key_text(key.public_key()) + "\n", encoding="ascii")
    logger.warning(
        "socialgate audit: generated a new checkpoint signing key at %s; its public key is %s. "
        "Give the public key to the investigators now, before anything can be altered.",
        path,
        pub,
    )
    return key


def load_public_key(path: pathlib.Path) -> Ed25519PublicKey:
    """A public key file: the hex written by `load_or_create_signing_key`, or PEM."""
    data = _read(path, "checkpoint public key", secret=False)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError
            return key
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.decode("ascii").strip()))
    except (ValueError, UnsupportedAlgorithm, UnicodeDecodeError):
        raise AuditError(f"checkpoint public key {path} is not an Ed25519 public key") from None


def sealing_static_key(path: pathlib.Path) -> bytes:
    """With forward-secure sealing the static key only checks a format-1 tail being continued
    (an upgrade); without the file, random bytes that match nothing (never generated)."""
    return load_secret(path) if path.exists() else secrets.token_bytes(SECRET_BYTES)
