"""Two real mitmdump workers sharing the reminder state file: one acknowledgement counts on
both, and an acknowledge link is good once, on either."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support.proxy import Proxy, start_proxy
from tests.support.upstream import Servers

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory, policy_dir: pathlib.Path, servers: Servers
) -> Iterator[tuple[Proxy, Proxy]]:
    state = tmp_path_factory.mktemp("shared") / "reminders.db"
    started: list[Proxy] = []
    try:
        for n in (1, 2):
            started.append(
                start_proxy(
                    tmp_path_factory.mktemp(f"worker{n}"),
                    policy_dir,
                    servers,
                    options=(
                        "--set",
                        f"socialgate_shared_state={state}",
                        "--set",
                        f"socialgate_audit_worker=testhost-{n}",
                    ),
                )
            )
        yield started[0], started[1]
    finally:
        for p in started:
            p.stop()


def get(proxy: Proxy, url: str) -> httpx.Response:
    with httpx.Client(proxy=proxy.url("bob"), timeout=10) as c:
        return c.get(url, headers=HTML)


def test_acknowledged_once_for_every_worker(workers: tuple[Proxy, Proxy]) -> None:
    """Reminder on worker 1, acknowledged on worker 2: neither reminds again; the link is spent."""
    one, two = workers
    first = get(one, "http://x.com/feed")
    assert "Professional use only" in first.text
    link = first.text.split('id="acknowledge" href="', 1)[1].split('"', 1)[0]
    link = link.replace("&amp;", "&")
    assert get(two, f"http://x.com{link}").status_code == 303
    assert get(one, "http://x.com/feed").text.startswith("upstream http: GET /feed")
    assert get(two, "http://x.com/other").text.startswith("upstream http: GET /other")
    assert get(one, f"http://x.com{link}").status_code == 400
    acks = [
        r for p in workers for r in p.records() if r["event"]["action"] == "reminder-acknowledged"
    ]
    assert [r["socialgate"]["chain"]["worker"] for r in acks] == ["testhost-2"]
