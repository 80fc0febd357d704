"""Concurrency for remote calls (a served model, an LLM judge): a bounded number of tasks in flight.

Remote calls spend their time waiting on the network, so threads are enough: ``completed(fn, tasks, n)``
keeps at most ``n`` calls in flight and yields each ``(task, result)`` as soon as it finishes, so the
caller can write it to disk at once (a killed run loses nothing that finished). Tasks are started lazily,
so at most ``n`` inputs (opened images, encoded requests) exist at a time. Results arrive in completion
order: callers key them by id, never rely on the order.

The retry rules live in the client (``tether.eval.judges.client``); a task that still fails stops the
run: no new task is started, the ones in flight are finished and yielded, then the first error is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TypeVar

from tether.core.errors import TetherError

Task = TypeVar("Task")
Result = TypeVar("Result")


def completed(fn: Callable[[Task], Result], tasks: Iterable[Task], concurrency: int) -> Iterator[tuple]:
    """``(task, fn(task))`` for every task, in completion order, at most ``concurrency`` running at once."""
    if concurrency < 1:
        raise TetherError(f"concurrency must be >= 1, got {concurrency}")
    if concurrency == 1:  # no threads: tracebacks and debuggers stay simple
        for task in tasks:
            yield task, fn(task)
        return
    remaining = iter(tasks)
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tether-remote") as pool:
        running = {}

        def start_more():
            while failure is None and len(running) < concurrency:
                task = next(remaining, _END)
                if task is _END:
                    return
                running[pool.submit(fn, task)] = task

        start_more()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task = running.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                yield task, future.result()
            start_more()
    if failure is not None:
        raise failure


_END = object()


class PrefetchedJudge:
    """A judge whose replies for a run were asked concurrently beforehand (``prefetch``); the benchmark's
    scorer then asks it one item at a time as usual and gets the stored reply. Anything not prefetched
    goes to the wrapped judge."""

    def __init__(self, judge):
        self.judge = judge
        self.name = judge.name
        self._replies: dict[tuple[str, str, str], str] = {}

    def settings(self) -> dict:
        return self.judge.settings()

    def prefetch(self, kind: str, items, answers: dict[str, str], concurrency: int) -> None:
        """Ask ``judge.<kind>(item, answer)`` (kind: mmhal or shr) for every item, ``concurrency`` at a time."""
        ask = getattr(self.judge, kind)
        todo = [item for item in items if (kind, item.id, answers[item.id]) not in self._replies]
        for item, reply in completed(lambda item: ask(item, answers[item.id]), todo, concurrency):
            self._replies[(kind, item.id, answers[item.id])] = reply

    def _reply(self, kind: str, item, text: str) -> str:
        stored = self._replies.get((kind, item.id, text))
        return stored if stored is not None else getattr(self.judge, kind)(item, text)

    def mmhal(self, item, response: str) -> str:
        return self._reply("mmhal", item, response)

    def shr(self, item, description: str) -> str:
        return self._reply("shr", item, description)


def progress_bar(total: int, enabled: bool, desc: str):
    """The progress bar of a run's answers (a served model's or a local one's), one step per question."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="q")
