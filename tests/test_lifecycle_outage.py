"""An audit disk that fills up under a real mitmdump: losses counted in the next break record."""

from __future__ import annotations

import errno
import json
import pathlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.proxy import Proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html"}
ATTEMPTS = 20


@pytest.fixture
def small_fs(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: pathlib.Path) -> None:
    """Write ``path`` until the file system is full."""
    with path.open("wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise


def all_records(directory: pathlib.Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(directory.glob("audit.jsonl*")):
        for line in f.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by ENOSPC
    return out


def test_records_lost_while_the_disk_is_full_are_counted_in_the_break(
    tmp_path: pathlib.Path, small_fs: pathlib.Path, policy_dir: pathlib.Path, servers: Servers
) -> None:
    proxy = Proxy(
        tmp_path,
        policy_dir / "policy.yaml",
        small_fs / "audit.jsonl",
        servers.http.port,
        servers.https.port,
        options=(
            "--set",
            f"proxyauth=@{policy_dir / 'htpasswd'}",
            "--set",
            "socialgate_audit_signing_key=",
        ),
    ).start()
    filler = small_fs / "filler"
    refs = []
    try:
        deadline = time.monotonic() + 5
        while not any(x["event"]["action"] == "policy-loaded" for x in all_records(small_fs)):
            assert time.monotonic() < deadline, "".join(proxy.output)
            time.sleep(0.02)
        fill(filler)
        with httpx.Client(proxy=proxy.url("carol"), timeout=10) as c:
            for _ in range(ATTEMPTS):
                r = c.get("http://www.facebook.com/", headers=HTML)
                assert r.status_code == 403
                refs.append(r.headers["x-socialgate-ref"])
                time.sleep(0.02)
            filler.unlink()
            time.sleep(1.2)  # the writer retries every second
            r = c.get("http://www.facebook.com/", headers=HTML)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            recs = all_records(small_fs)
            breaks = [x for x in recs if "break" in x["socialgate"].get("chain", {})]
            if breaks:
                break
            time.sleep(0.05)
    finally:
        code = proxy.stop()
    assert code == 0
    assert "Allowed social traffic is BLOCKED" in "".join(proxy.output)
    recs = all_records(small_fs)
    [resumed] = [x for x in recs if "break" in x["socialgate"].get("chain", {})]
    brk = resumed["socialgate"]["chain"]["break"]
    written = {x["event"]["id"] for x in recs} & set(refs)
    lost = ATTEMPTS - len(written)
    assert lost > 0, "the disk never filled up"
    print(f"{ATTEMPTS} blocked attempts during the outage: {len(written)} written, {lost} lost")
    assert brk["reason"] == "write-error"
    assert brk["lost_records"] == lost
    assert brk["lost_by_action"] == {"request-blocked": lost}
    assert f"{lost} records lost" in resumed["message"]
