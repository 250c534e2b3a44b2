"""`socialgate init`: prepare an installation, once, before the first start (idempotent).

With a configuration directory (``socialgate --confdir /etc/socialgate init``, or
$SOCIALGATE_CONFDIR) it writes ``config.yaml`` there if there is none (absolute paths: the
policy beside it, keys in ``keys/``, logs in ``--log-dir``), then, from what that file names:
the directories with their modes (and owner), the chain key and the checkpoint signing key
(0600; the public key's fingerprint is printed for the investigators), the mitmproxy CA in the
confdir, an empty admin chain, and a check of the htpasswd file (mitmproxy reads only bcrypt
entries). Without one, it prepares the defaults below the working directory (a checkout).
Nothing that exists is overwritten; the proxy and the other commands never create keys.

Forward-secure sealing (``socialgate_audit_seal_dir`` in the configuration, which a new
``config.yaml`` names): `init` enrols each chain (the proxy's worker, the admin chain, and any
``--worker``) with its epoch-0 key derived from the *verification seed*. The seed is read from
``--seed FILE``, or created there (mode 0600) if the file does not exist; it may not be kept
in the configuration, log or key-state directories the service reads. It must then leave the
host: the investigators need it to verify, and whoever holds it can re-seal everything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pathlib
import pwd
import re
import socket

import click

from proxy_addons.audit import epochs
from proxy_addons.audit.keys import (
    load_or_create_secret,
    load_or_create_signing_key,
    public_key_path,
    public_key_text,
)
from proxy_addons.cli.common import settings
from proxy_addons.config import CONFIG_NAME, Settings, find_confdir
from proxy_addons.errors import AuditError, ConfigError, PolicyError

DEFAULT_LOG_DIR = "/var/log/socialgate"
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


def config_text(confdir: pathlib.Path, log_dir: pathlib.Path, htpasswd: str | None) -> str:
    """The config.yaml `init` writes: mitmproxy's format, keys are ``--set`` option names."""
    lines = [
        "# socialgate configuration: mitmproxy's config.yaml (the keys are --set option names).",
        "# Read by the proxy (socialgate run, mitmdump) and by every socialgate command, so",
        "# they all agree on where the policy, the logs and the keys are. Relative paths are",
        "# relative to this file. A flag or --set on a command line overrides a value here.",
        f"socialgate_policy: {confdir / 'policy.yaml'}",
        f"socialgate_audit_log: {log_dir / 'audit.jsonl'}",
        f"socialgate_admin_log: {log_dir / 'admin-audit.jsonl'}",
        f"socialgate_audit_key: {confdir / 'keys' / 'audit-hmac.key'}",
        f"socialgate_audit_signing_key: {confdir / 'keys' / 'audit-signing.key'}",
        "# Forward-secure sealing: each chain's evolving key (the verification seed is kept",
        "# off this host; see docs/audit-trail.md).",
        f"socialgate_audit_seal_dir: {log_dir / 'seal'}",
        "listen_host: 0.0.0.0",
        "listen_port: 8080",
    ]
    if htpasswd:
        lines.append(f'proxyauth: "@{htpasswd}"')
    return "\n".join(lines) + "\n"


def check_htpasswd(path: pathlib.Path) -> int:
    """The number of users in an htpasswd file, all bcrypt; `ConfigError` otherwise.

    mitmproxy's proxyauth reads only bcrypt entries (``htpasswd -B``): an ``$apr1$`` (MD5) or
    crypt entry makes it refuse the whole file ("Could not open htpasswd file").
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read htpasswd file {path}: {e}") from None
    users = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"{path}:{n}: not a 'user:hash' line")
        if not _BCRYPT.match(hashed.strip()):
            kind = "MD5 ($apr1$)" if hashed.startswith("$apr1$") else "not bcrypt"
            raise ConfigError(
                f"{path}:{n}: user {user}: {kind}; mitmproxy reads only bcrypt entries "
                f"(create them with 'htpasswd -B {path} {user}')"
            )
        users += 1
    return users


def _owner(name: str | None) -> tuple[int, int] | None:
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"--owner {name}: no such user (create it first: useradd)") from None
    return entry.pw_uid, entry.pw_gid


def _give(path: pathlib.Path, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        try:
            os.chown(path, *owner)
        except OSError as e:
            raise ConfigError(f"cannot give {path} to uid {owner[0]}: {e.strerror}") from None


def _directory(path: pathlib.Path, mode: int, owner: tuple[int, int] | None) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as e:
        raise ConfigError(f"cannot create {path}: {e.strerror}") from None
    _give(path, owner)


def fingerprint(public_hex: str) -> str:
    """SHA-256 of the raw public key, the way investigators compare it by phone."""
    return "SHA256:" + hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()


@click.command("init")
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=DEFAULT_LOG_DIR,
    show_default=True,
    help="Where config.yaml puts the logs, when init writes it.",
)
@click.option(
    "--htpasswd",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Proxy users (bcrypt htpasswd): checked, and named in a new config.yaml.",
)
@click.option("--owner", metavar="USER", help="The proxy's account: owns keys, CA and logs.")
@click.option(
    "--seed",
    "seed_path",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Verification seed for forward-secure sealing: created here if absent (then move it "
    "off the host), read to enrol chains if present. Not in the confdir or log directories.",
)
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="NAME",
    help="Also enrol this worker's chain (another proxy process on this host; repeatable).",
)
def init(
    log_dir: pathlib.Path,
    htpasswd: pathlib.Path | None,
    owner: str | None,
    seed_path: pathlib.Path | None,
    workers: tuple[str, ...],
) -> None:
    """Create what the configuration names: directories, keys, the CA, the admin chain."""
    ctx = click.get_current_context()
    given = ctx.find_root().params.get("confdir")
    confdir = find_confdir(given if isinstance(given, str) else None)
    uid_gid = _owner(owner)
    if htpasswd is not None:
        click.echo(f"htpasswd {htpasswd}: {check_htpasswd(htpasswd)} bcrypt user(s)")
    if confdir is not None:
        confdir = confdir.absolute()
        _directory(confdir, 0o755, None)
        config = confdir / CONFIG_NAME
        if not config.exists():
            text = config_text(
                confdir, log_dir.absolute(), str(htpasswd.absolute()) if htpasswd else None
            )
            config.write_text(text, encoding="utf-8")
            config.chmod(0o644)
            click.echo(f"wrote {config}")
        else:
            click.echo(f"kept {config}")
    conf = settings(ctx)
    proxyauth = conf.options.get("proxyauth")
    if htpasswd is None and isinstance(proxyauth, str) and proxyauth.startswith("@"):
        users = check_htpasswd(pathlib.Path(proxyauth[1:]))
        click.echo(f"htpasswd {proxyauth[1:]}: {users} bcrypt user(s)")
    key = pathlib.Path(conf.key)
    _directory(key.parent, 0o700, uid_gid)
    seal = conf.options.get("socialgate_audit_seal_dir")
    try:
        if isinstance(seal, str) and seal.strip():
            _enrol(pathlib.Path(seal), conf, confdir, seed_path, workers, uid_gid)
        else:
            existed = key.exists()
            load_or_create_secret(key, "audit key")
            _give(key, uid_gid)
            click.echo(f"{'kept' if existed else 'created'} chain key {key} (mode 0600)")
        if conf.signing_key:
            signing = pathlib.Path(conf.signing_key)
            _directory(signing.parent, 0o700, uid_gid)
            existed = signing.exists()
            public = public_key_text(load_or_create_signing_key(signing).public_key())
            _give(signing, uid_gid)
            pub = public_key_path(signing)
            if not pub.exists():
                pub.write_text(public + "\n", encoding="ascii")
            click.echo(
                f"{'kept' if existed else 'created'} signing key {signing} (mode 0600); "
                f"public key {pub}: {public} ({fingerprint(public)}): give it to the "
                "investigators now"
            )
    except AuditError as e:
        raise ConfigError(str(e)) from None
    for log in dict.fromkeys((pathlib.Path(conf.audit_log), pathlib.Path(conf.admin_log))):
        _directory(log.parent, 0o750, uid_gid)
    admin = pathlib.Path(conf.admin_log)
    if not admin.exists():
        admin.touch(mode=0o640)
        click.echo(f"created admin chain {admin} (empty)")
    if confdir is not None:
        from proxy_addons.addons.ca import ca_cert, ensure_ca

        for f in ensure_ca(confdir):
            _give(f, uid_gid)
        click.echo(f"CA in {confdir}: distribute {ca_cert(confdir)} to staff machines")
    policy = pathlib.Path(conf.policy)
    if not policy.exists():
        click.echo(f"note: no policy at {policy} yet: copy policies/ there before starting")
        return
    from proxy_addons.policy.load import load_policy

    try:
        loaded = load_policy(str(policy))
    except PolicyError as e:
        raise ConfigError(f"policy {policy}: {e}") from None
    click.echo(f"policy {policy}: ok (sha256 {loaded.sha256})")


def _worker_names(conf: Settings, extra: tuple[str, ...]) -> list[str]:
    """The chains this host writes: the proxy's worker, the admin chain, and ``extra``."""
    host = socket.gethostname()
    proxy = conf.options.get("socialgate_audit_worker")
    if not isinstance(proxy, str) or not proxy.strip():
        proxy = f"{host}:{pathlib.Path(conf.audit_log).name}"
    admin = f"{host}:{pathlib.Path(conf.admin_log).name}"
    return list(dict.fromkeys([proxy.strip(), admin, *extra]))


def _outside(path: pathlib.Path, places: list[pathlib.Path]) -> None:
    where = path.absolute().resolve()
    for place in places:
        top = place.absolute().resolve()
        if where == top or top in where.parents:
            raise ConfigError(
                f"--seed {path}: inside {place}, which the proxy host keeps; write the "
                "verification seed elsewhere (removable media, or print it) and take it off "
                "the host"
            )


def _enrol(
    seal_dir: pathlib.Path,
    conf: Settings,
    confdir: pathlib.Path | None,
    seed_path: pathlib.Path | None,
    extra: tuple[str, ...],
    owner: tuple[int, int] | None,
) -> None:
    """Create the epoch-0 key state of every chain not yet enrolled (needs the seed)."""
    _directory(seal_dir, 0o700, owner)
    names = _worker_names(conf, extra)
    todo = [w for w in names if not epochs.state_path(seal_dir, w).exists()]
    for w in names:
        if w not in todo:
            click.echo(f"kept epoch key state of {w!r} in {seal_dir}")
    if not todo:
        return
    if seed_path is None:
        raise ConfigError(
            f"forward-secure sealing ({seal_dir}): give --seed FILE to create the verification "
            f"seed (or to read it) and enrol {', '.join(repr(w) for w in todo)}"
        )
    places = [seal_dir, pathlib.Path(conf.audit_log).parent, pathlib.Path(conf.admin_log).parent]
    _outside(seed_path, [*places, *([confdir] if confdir else [])])
    if seed_path.exists():
        seed = epochs.load_seed(seed_path)
    else:
        seed = epochs.new_seed()
        try:
            fd = os.open(seed_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise ConfigError(f"--seed {seed_path}: cannot create: {e.strerror}") from None
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(epochs.seed_text(seed))
        click.echo(
            f"created verification seed {seed_path} ({epochs.seed_fingerprint(seed)}): move it "
            "off this host NOW (the investigators need it for 'audit verify --seed'; whoever "
            "holds it can re-seal the whole trail)"
        )
    start = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for w in todo:
        epochs.enrol(seal_dir, seed, w, start)
        _give(epochs.state_path(seal_dir, w), owner)
        click.echo(f"enrolled {w!r}: epoch key state in {seal_dir}")
