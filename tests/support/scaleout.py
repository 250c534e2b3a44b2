"""One proxy host as deployed for scale-out: `socialgate init`, N workers started exactly as
deploy/socialgate@.service starts them, and HAProxy from deploy/haproxy.cfg in front.

Only what a test must change is changed: the installation's paths point into the test's
directory, each worker listens on a free loopback port, and the test-only redirect addon
sends every server connection to the local upstreams (there is no DNS here).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from typing import Any

from tests.support.haproxy import Balancer, free_port
from tests.support.policies import write_htpasswd, write_policy
from tests.support.proxy import BIN, ROOT, launch, terminate
from tests.support.units import (
    DEPLOY,
    UNIT_CONFDIR,
    UNIT_LOGDIR,
    environment,
    service_argv,
    with_flag,
)
from tests.support.upstream import Servers

TEMPLATE = DEPLOY / "socialgate@.service"
HOSTNAME = "testhost"  # %l: the short host name in the unit's log names and worker ids


class Worker:
    """One socialgate@NN instance: a `socialgate run` process on its own port and log."""

    def __init__(self, number: int, argv: list[str], env: dict[str, str], cwd: pathlib.Path):
        self.number = number
        self.instance = f"{number:02d}"
        self.port = free_port()
        self.argv = with_flag(argv, "--listen-port", str(self.port))
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def log(self) -> pathlib.Path:
        return pathlib.Path(self.argv[self.argv.index("--audit-log") + 1])

    def start(self, timeout: float = 30) -> Worker:
        self.proc, self.output, port = launch(self.argv, self.cwd, self.env, timeout)
        if port != self.port:
            self.stop()
            raise RuntimeError(f"worker {self.instance} did not start:\n" + "".join(self.output))
        return self

    def kill(self) -> None:
        """kill -9: no clean shutdown, no audit-stopped record."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        return terminate(self.proc, 20)

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text().splitlines() if x.strip()]


def seed_path(root: pathlib.Path) -> pathlib.Path:
    """The verification seed `install` had init write: off the host (removable media)."""
    return root / "offline" / "verification.seed"


def install(
    root: pathlib.Path, extra_config: dict[str, object], workers: int
) -> tuple[pathlib.Path, pathlib.Path]:
    """`socialgate init` into root/etc (logs in root/log) with the test policy; returns both.

    ``extra_config``: more config.yaml lines (the options every worker shares). The workers'
    chains (``<host>-01`` …) are enrolled for forward-secure sealing, as docs/deploying.md says.
    """
    etc, logs = root / "etc", root / "log"
    etc.mkdir()
    seed_path(root).parent.mkdir()
    write_policy(etc)
    write_htpasswd(etc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALGATE_")}
    enrol = [a for n in range(1, workers + 1) for a in ("--worker", f"{HOSTNAME}-{n:02d}")]
    res = subprocess.run(
        [str(BIN / "socialgate"), "--confdir", str(etc), "init", "--log-dir", str(logs),
         "--htpasswd", str(etc / "htpasswd"), "--seed", str(seed_path(root)), *enrol],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    with (etc / "config.yaml").open("a") as f:
        for name, value in extra_config.items():
            f.write(f"{name}: {json.dumps(value)}\n")
    return etc, logs


class Site:
    """An installed host: workers 01..N and the balancer in front of them."""

    def __init__(
        self, root: pathlib.Path, servers: Servers, workers: int, extra_config: dict[str, object]
    ) -> None:
        self.root = root
        self.etc, self.logs = install(root, extra_config, workers)
        state = root / "state"
        state.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALGATE_")}
        for name, value in environment(TEMPLATE).items():
            env[name] = value.replace(UNIT_CONFDIR, str(self.etc))
        env.update(
            SGTEST_HTTP_PORT=str(servers.http.port), SGTEST_HTTPS_PORT=str(servers.https.port)
        )
        paths = {UNIT_CONFDIR: self.etc, UNIT_LOGDIR: self.logs}
        self.workers = [
            Worker(
                n,
                [
                    *service_argv(TEMPLATE, {"i": f"{n:02d}", "l": HOSTNAME}, paths),
                    "-s",
                    str(ROOT / "tests/support/redirect.py"),
                    "--set",
                    "ssl_insecure=true",
                ],
                env,
                state,
            )
            for n in range(1, workers + 1)
        ]
        self.balancer: Balancer | None = None
        try:
            for w in self.workers:
                w.start()
            self.balancer = Balancer(root, [w.port for w in self.workers])
            self.balancer.wait_for({f"w{w.instance}": "UP" for w in self.workers})
        except BaseException:
            self.stop()
            raise

    @property
    def port(self) -> int:
        assert self.balancer is not None
        return self.balancer.port

    @property
    def ca(self) -> pathlib.Path:
        return self.etc / "mitmproxy-ca-cert.pem"

    def records(self) -> list[dict[str, Any]]:
        return [r for w in self.workers for r in w.records()]

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        for w in self.workers:
            w.stop()
