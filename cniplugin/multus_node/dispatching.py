"""Who runs which request when: one lane per container, a bounded queue, DEL first.

- Requests of one container run one at a time, in arrival order (the CNI spec forbids
  parallel operations on one container; the engine's per-container lock would
  serialize them anyway, but holding a worker while it waits).
- Different containers run in parallel on `workers` threads.
- At most `max_queue` requests wait. Past that, an ADD (or CHECK) is answered with
  CNI error 11 at once, which the runtime retries later, rather than growing memory
  until the kernel kills the daemon (Multus #1346). A DEL is never shed: it frees
  what an ADD took, and a runtime may not retry it. GC and STATUS are never shed.
- A lane whose next request is a DEL is served before the others.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from . import metrics

SHEDDABLE = frozenset(("ADD", "CHECK"))
T = TypeVar("T")


class Job(Generic[T]):
    """A request and what to do with it: `run` (in a worker) or `refuse` (queue full)."""

    def __init__(self, lane: str, command: str, payload: T) -> None:
        self.lane = lane
        self.command = command
        self.payload = payload


class Dispatcher(Generic[T]):
    def __init__(self, workers: int, max_queue: int, run: Callable[[Job[T]], None]) -> None:
        self.max_queue = max_queue
        self._run = run
        self._lanes: dict[str, collections.deque[Job[T]]] = {}
        self._urgent: collections.deque[str] = collections.deque()  # lanes with a DEL next
        self._normal: collections.deque[str] = collections.deque()
        self._busy: set[str] = set()
        self._queued = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self.running = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def submit(self, job: Job[T]) -> bool:
        """Queue the job; False (nothing queued) when it is shed."""
        with self._cond:
            if self._queued >= self.max_queue and job.command in SHEDDABLE:
                metrics.SHED.labels(job.command).inc()
                return False
            lane = self._lanes.get(job.lane)
            if lane is None:
                lane = self._lanes[job.lane] = collections.deque()
            lane.append(job)
            self._queued += 1
            metrics.QUEUED.set(self._queued)
            if len(lane) == 1 and job.lane not in self._busy:
                self._ready(job.lane)
            self._cond.notify()
        return True

    def _ready(self, name: str) -> None:
        head = self._lanes[name][0]
        (self._urgent if head.command == "DEL" else self._normal).append(name)

    def _next(self) -> Job[T] | None:
        with self._cond:
            while not self._urgent and not self._normal:
                if self._stopping:
                    return None
                self._cond.wait()
            name = self._urgent.popleft() if self._urgent else self._normal.popleft()
            job = self._lanes[name].popleft()
            self._busy.add(name)
            self._queued -= 1
            self.running += 1
            metrics.QUEUED.set(self._queued)
            return job

    def _done(self, job: Job[T]) -> None:
        with self._cond:
            self._busy.discard(job.lane)
            self.running -= 1
            if self._lanes[job.lane]:
                self._ready(job.lane)
                self._cond.notify()
            else:
                del self._lanes[job.lane]
            if not self._lanes and not self.running:
                self._cond.notify_all()  # drain() waits for this

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                self._done(job)

    def drain(self, timeout: float) -> bool:
        """Stop taking work once everything queued and running is done (or `timeout`
        passed); True when it all finished."""
        with self._cond:
            finished = self._cond.wait_for(lambda: not self._lanes and not self.running, timeout)
            self._stopping = True
            self._cond.notify_all()
            return finished
