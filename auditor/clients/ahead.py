"""HogQL answers asked ahead of the audits that read them.

PostHog allows about 120 HogQL queries an hour per key, in a sliding window. A batch's audits each send theirs
when they reach gathering, spread over the minutes the first 120 accounts take; so the 121st query waits for the
first one's hour, the 150th for the 30th's, and the batch's last accounts wait that spread again. A batch's lane
(auditor/batch.py) sends the queries in account order as soon as it can, and leaves each answer (or its error) here
for the audit that asks for it: the same query, the same answer, the same fallbacks, counted in that audit's stats.

An audit that asks before the lane reached its project claims it, and the lane skips it: a query is never sent
twice. Answers waiting to be taken are bounded in number and in rows, so a lane cannot hold a book's worth of
answers in memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

Key = tuple[str, str, str, str, str, int | None]  # host, key digest, project, query text, name, limit
StepAside = Callable[[], contextlib.AbstractContextManager[None]]

# How long an audit waits for an answer under way before it gives its place to another (as on the rate limiter).
STEP_ASIDE_AFTER = 1.0


class Answer:
    """One query sent ahead: its result or its error once settled, and the requests it took."""

    def __init__(self) -> None:
        self._settled = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.stats: Any = None
        self.rows = 0  # rows held while it waits to be taken

    def wait(self, step_aside: StepAside | None) -> None:
        if self._settled.wait(STEP_ASIDE_AFTER if step_aside is not None else None):
            return
        assert step_aside is not None
        with step_aside():
            self._settled.wait()


class QueriesAhead:
    """A batch's answers asked ahead, by host, key, project and query."""

    def __init__(self, max_waiting: int = 120, max_rows: int = 100_000):
        self.max_waiting, self.max_rows = max_waiting, max_rows
        self._lock = threading.Condition()
        self._answers: dict[Key, Answer] = {}  # sent or settled, not yet taken
        self._claimed: set[Key] = set()  # asked for by an audit: never sent ahead again
        self._rows = 0
        self.closed = False
        self.sent = 0
        self.taken = 0

    def promise(self, key: Key) -> Answer | None:
        """Reserve `key` for the lane, waiting while too many answers wait to be taken. None: its audit asked
        first (it sends its own), or the batch is over."""
        with self._lock:
            while not self.closed and key not in self._claimed and (
                    len(self._answers) >= self.max_waiting or self._rows >= self.max_rows):
                self._lock.wait()
            if self.closed or key in self._claimed or key in self._answers:
                return None
            answer = self._answers[key] = Answer()
            self.sent += 1
            return answer

    def settle(self, key: Key, answer: Answer, *, value: Any = None, error: BaseException | None = None,
               stats: Any = None, rows: int = 0) -> None:
        with self._lock:
            answer.value, answer.error, answer.stats = value, error, stats
            if self._answers.get(key) is answer:  # still waiting to be taken: its rows count against the bound
                answer.rows = rows
                self._rows += rows
        answer._settled.set()

    def take(self, key: Key) -> Answer | None:
        """The answer sent ahead for `key` (settled or under way), or None: the caller sends the query itself,
        and the lane will not."""
        with self._lock:
            self._claimed.add(key)
            answer = self._answers.pop(key, None)
            if answer is not None:
                self.taken += 1
                self._rows -= answer.rows
                answer.rows = 0
            self._lock.notify_all()  # room for the lane, or its wait for this key is over
            return answer

    def drop(self, keys: list[Key]) -> None:
        """An audit is over: whatever was sent ahead for it and not taken (it failed before its query) is
        dropped, and never sent again; its rows no longer hold the lane back."""
        for key in keys:
            self.take(key)

    def close(self) -> int:
        """The batch is over: nothing more is promised, answers never taken are dropped. Returns how many."""
        with self._lock:
            self.closed = True
            left = len(self._answers)
            self._answers.clear()
            self._rows = 0
            self._lock.notify_all()
            return left


_store: contextvars.ContextVar[QueriesAhead | None] = contextvars.ContextVar("posthog_queries_ahead", default=None)


@contextlib.contextmanager
def reading_ahead(store: QueriesAhead) -> Iterator[None]:
    """Within the block (and the threads it starts with its context), a query first looks for its answer in
    `store`."""
    token = _store.set(store)
    try:
        yield
    finally:
        _store.reset(token)


def current() -> QueriesAhead | None:
    return _store.get()
