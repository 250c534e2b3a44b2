"""The proxy's CA in mitmproxy's confdir, created the way mitmproxy itself creates it.

`socialgate init` calls this so that the proxy can start with its confdir read-only.
"""

from __future__ import annotations

import pathlib

from mitmproxy import certs
from mitmproxy.options import CONF_BASENAME

CA_KEY_SIZE = 2048


def ensure_ca(confdir: pathlib.Path) -> list[pathlib.Path]:
    """Create (if absent) and load the CA in ``confdir``; the files it consists of."""
    certs.CertStore.from_store(confdir, CONF_BASENAME, CA_KEY_SIZE)
    return sorted(confdir.glob(f"{CONF_BASENAME}-*"))


def ca_cert(confdir: pathlib.Path) -> pathlib.Path:
    """The certificate to distribute to staff machines."""
    return confdir / f"{CONF_BASENAME}-ca-cert.pem"
