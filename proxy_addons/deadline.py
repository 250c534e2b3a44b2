"""Blocking calls with a deadline, awaited from the event loop.

A read of a file on a hung network mount blocks in the kernel, and no thread
can be interrupted there. `Deadline.run` runs the call in a daemon thread of
its own and stops waiting at the deadline (`Hung`); the thread is left to
finish whenever the file system answers. Until it does, it counts as hung, and
past ``max_hung`` such threads new calls are refused at once rather than piling
up more threads behind the same dead mount. Daemon threads: a hung one never
holds up the process's exit (``asyncio.to_thread``'s executor would).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class Hung(Exception):
    """The call did not return before its deadline (or earlier ones still have not)."""


class Deadline:
    def __init__(self, name: str, *, max_hung: int = 2) -> None:
        self.name = name
        self.max_hung = max_hung
        self._lock = threading.Lock()
        self._hung = 0  # threads still running past their deadline

    @property
    def hung(self) -> int:
        with self._lock:
            return self._hung

    async def run[T](self, timeout: float, call: Callable[[], T]) -> T:
        """``call()`` in a thread; its result, or `Hung` after ``timeout`` seconds."""
        if self.hung >= self.max_hung:
            raise Hung(f"{self.hung} earlier {self.name} calls still have not returned")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        state = {"decided": False}  # by the first of: the call returned, the deadline passed

        def settle(result: T | None, error: BaseException | None) -> None:
            if done.cancelled():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)  # type: ignore[arg-type]

        def work() -> None:
            result: T | None = None
            error: BaseException | None = None
            try:
                result = call()
            except BaseException as e:  # handed to the awaiting side
                error = e
            with self._lock:
                if state["decided"]:
                    self._hung -= 1
                    return
                state["decided"] = True  # returned in time
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=work, name=f"socialgate-{self.name}", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            with self._lock:
                if not state["decided"]:
                    state["decided"] = True
                    self._hung += 1
                    raise Hung(
                        f"{self.name} did not return within {timeout:g} s (hung file system?)"
                    ) from None
            # It finished just at the deadline: its result is on its way.
            return await done
