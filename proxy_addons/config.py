"""The one configuration file the proxy and every command read: ``<confdir>/config.yaml``.

It is mitmproxy's own convention: ``config.yaml`` in mitmproxy's ``confdir``, whose keys are
the ``--set`` option names (``socialgate_policy``, ``socialgate_audit_log``,
``socialgate_audit_key``, ``listen_port``, ``proxyauth`` …). mitmdump reads that file by itself;
`socialgate run` and the `exempt`, `check`, `policy` and `audit` commands read it here, so they
all resolve the policy, the live log, the admin chain, the keys and the checkpoints from one
place. The confdir is ``socialgate --confdir DIR``, else ``$SOCIALGATE_CONFDIR``; with neither,
there is no configuration file and the defaults of `proxy_addons.paths` apply (relative to the
working directory: a checkout's ``make run``).

Paths in the file are absolute or relative to the file itself, never to the directory a
command is run from. Flags still override the file. Pure: no mitmproxy here.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from proxy_addons.errors import ConfigError
from proxy_addons.paths import (
    DEFAULT_AUDIT_LOG,
    DEFAULT_KEY,
    DEFAULT_POLICY,
    DEFAULT_SIGNING_KEY,
    POLICY_ENV,
)

CONFDIR_ENV = "SOCIALGATE_CONFDIR"
CONFIG_NAME = "config.yaml"
ADMIN_LOG_NAME = "admin-audit.jsonl"
MAX_CONFIG_BYTES = 1024 * 1024

# Options holding a path: resolved against the configuration file's directory.
PATH_OPTIONS = (
    "socialgate_policy",
    "socialgate_audit_log",
    "socialgate_admin_log",
    "socialgate_audit_key",
    "socialgate_audit_signing_key",
    "socialgate_audit_checkpoints",
    "socialgate_audit_pseudonymise_key",
    "socialgate_audit_seal_dir",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Where every file is, as one installation sees it."""

    config: pathlib.Path | None  # the file read; None: defaults only
    confdir: pathlib.Path | None
    policy: str
    audit_log: str
    admin_log: str
    key: str
    signing_key: str  # "": no checkpoints
    checkpoints: str  # "": <log stem>.checkpoints beside the log
    options: dict[str, Any] = field(default_factory=dict)  # every key of the file, resolved

    @property
    def public_key(self) -> str:
        """The checkpoint public key written beside the signing key ("" without one)."""
        if not self.signing_key:
            return ""
        p = pathlib.Path(self.signing_key)
        return str(p.with_name(p.name.removesuffix(".key") + ".pub"))


def find_confdir(given: str | None = None) -> pathlib.Path | None:
    """``given`` (``--confdir``), else ``$SOCIALGATE_CONFDIR``; None when neither is set."""
    value = given if given is not None else os.environ.get(CONFDIR_ENV, "")
    return pathlib.Path(value).expanduser() if value.strip() else None


def _resolve(value: Any, base: pathlib.Path, name: str, where: pathlib.Path) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name}: expected a path, got {value!r}")
    value = value.strip()
    if not value:
        return ""
    path = pathlib.Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def read_config(path: pathlib.Path, *, resolve: bool = True) -> dict[str, Any]:
    """The options in ``path`` (a YAML mapping), path options made absolute; `ConfigError`.

    ``resolve=False``: the values as written.
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read configuration {path}: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        loaded = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{line}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    if not resolve:
        return loaded
    base = path.absolute().parent
    return {k: _resolve(v, base, k, path) if k in PATH_OPTIONS else v for k, v in loaded.items()}


def load_settings(confdir: pathlib.Path | None) -> Settings:
    """The settings of the installation configured in ``confdir`` (None: the defaults)."""
    config = confdir / CONFIG_NAME if confdir is not None else None
    options: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise ConfigError(
                f"no configuration {config} (run 'socialgate --confdir {confdir} init' to "
                f"create it, or unset {CONFDIR_ENV})"
            )
        options = read_config(config)
    policy = os.environ.get(POLICY_ENV) or options.get("socialgate_policy") or DEFAULT_POLICY
    audit_log = options.get("socialgate_audit_log") or DEFAULT_AUDIT_LOG
    admin_log = options.get("socialgate_admin_log") or str(
        pathlib.Path(audit_log).with_name(ADMIN_LOG_NAME)
    )
    return Settings(
        config=config,
        confdir=confdir,
        policy=policy,
        audit_log=audit_log,
        admin_log=admin_log,
        key=options.get("socialgate_audit_key") or DEFAULT_KEY,
        signing_key=options.get("socialgate_audit_signing_key", DEFAULT_SIGNING_KEY),
        checkpoints=options.get("socialgate_audit_checkpoints", ""),
        options=options,
    )
