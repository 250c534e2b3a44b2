"""Group commit: records gathered on the event loop reach the writer in order, in few batches."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from proxy_addons.audit.commit import GroupCommit
from proxy_addons.audit.record import Record
from proxy_addons.audit.writer import BatchDone
from proxy_addons.errors import AuditUnavailable


class FakeWriter:
    """Answers each batch from another thread, like the writer thread, once released."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail or set()
        self.closed = False
        self.release = threading.Event()
        self.release.set()

    def submit_batch(
        self, records: list[Record], on_done: BatchDone, waited: Sequence[bool] | None = None
    ) -> None:
        if self.closed:
            raise AuditUnavailable("audit log is closed")
        numbers = [r["n"] for r in records]
        self.batches.append(numbers)

        def answer() -> None:
            self.release.wait(10)
            errors: list[BaseException | None] = [
                AuditUnavailable(f"disk full ({n})") if n in self.fail else None for n in numbers
            ]
            on_done(errors)

        threading.Thread(target=answer).start()


def rec(n: int) -> Record:
    return {"n": n, "event": {"action": "request-allowed"}}


async def submit_all(commit: GroupCommit, numbers: list[int]) -> list[Any]:
    waiters = []
    for n in numbers:
        w: asyncio.Future[None] = commit.loop.create_future()
        commit.add(rec(n), w)
        waiters.append(w)
    return await asyncio.gather(*waiters, return_exceptions=True)


def test_one_loop_iteration_is_one_batch() -> None:
    """Records added in the same loop iteration are handed over together."""

    async def main() -> list[list[int]]:
        writer = FakeWriter()
        results = await submit_all(GroupCommit(writer, asyncio.get_running_loop()), [1, 2, 3])
        assert results == [None, None, None]
        return writer.batches

    assert asyncio.run(main()) == [[1, 2, 3]]


def test_records_gather_while_a_batch_is_in_flight() -> None:
    """While the writer holds a batch, new records wait and go next, in order."""

    async def main() -> list[list[int]]:
        writer = FakeWriter()
        writer.release.clear()
        commit = GroupCommit(writer, asyncio.get_running_loop())
        first = asyncio.ensure_future(submit_all(commit, [1]))
        await asyncio.sleep(0.05)  # batch [1] is with the writer
        later = asyncio.ensure_future(submit_all(commit, [2, 3]))
        await asyncio.sleep(0.01)
        more = asyncio.ensure_future(submit_all(commit, [4]))
        await asyncio.sleep(0.05)
        assert writer.batches == [[1]]  # nothing overtakes the batch in flight
        writer.release.set()
        assert list(await asyncio.gather(first, later, more)) == [[None], [None, None], [None]]
        return writer.batches

    assert asyncio.run(main()) == [[1], [2, 3, 4]]


def test_each_waiter_gets_its_own_outcome() -> None:
    """A record that could not be written fails its waiter only."""

    async def main() -> list[Any]:
        writer = FakeWriter(fail={2})
        return await submit_all(GroupCommit(writer, asyncio.get_running_loop()), [1, 2, 3])

    results = asyncio.run(main())
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], AuditUnavailable)


def test_closed_writer_fails_the_waiters() -> None:
    """A writer that refuses the batch fails every waiter of it (fail closed)."""

    async def main() -> list[Any]:
        writer = FakeWriter()
        writer.closed = True
        return await submit_all(GroupCommit(writer, asyncio.get_running_loop()), [1, 2])

    assert all(isinstance(r, AuditUnavailable) for r in asyncio.run(main()))


def test_lost_record_without_waiter_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A record nobody waits for (a blocked attempt) is never lost quietly."""

    async def main() -> None:
        writer = FakeWriter(fail={7})
        commit = GroupCommit(writer, asyncio.get_running_loop())
        commit.add(rec(7), None)
        await submit_all(commit, [8])  # completes after the batch holding 7

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert "record LOST (request-allowed): disk full (7)" in caplog.text


def test_drain_hands_over_what_is_gathered() -> None:
    """Closing the trail hands over records not yet sent, so none is left behind."""

    async def main() -> list[list[int]]:
        writer = FakeWriter()
        writer.release.clear()
        commit = GroupCommit(writer, asyncio.get_running_loop())
        commit.add(rec(1), None)
        await asyncio.sleep(0.01)  # [1] in flight
        commit.add(rec(2), None)
        commit.add(rec(3), None)
        commit.drain()
        writer.release.set()
        await asyncio.sleep(0.05)
        return writer.batches

    assert asyncio.run(main()) == [[1], [2, 3]]
