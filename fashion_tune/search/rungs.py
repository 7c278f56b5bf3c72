"""One rung of promotion ASHA, kept so that a decision costs O(log n), not O(n log n).

A rung holds each trial's value there, in rank order (a sorted list: ``bisect`` gives a
trial's rank), the trials promoted from it, and a heap of the trials waiting at it. The
best waiting trial of a rung is the heap's top; it is promotable when its rank is below
the rung's quota, and when it is not, no other waiting trial of that rung is (the heap and
the rank order share one key). A decision therefore looks at one entry per rung instead of
sorting every rung for every waiting trial: the scheduler replayed at 800 trials spent
69 ms per ``choose_trial_to_run`` that way (benchmarks/RESULTS.md, "Scale").

Heap entries are removed lazily: an entry is live while its trial still waits at this rung,
is not promoted, and its key is the trial's current key.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Callable

EPS = 1e-9
Entry = tuple[float, str]  # (sort key: better first, trial id)


class Rung:
    def __init__(self, key: Callable[[float], float]):
        self._key = key
        self.values: dict[str, float] = {}  # trial id -> rung value
        self.promoted: set[str] = set()
        self._order: list[Entry] = []  # every record, best first
        self._waiting: set[str] = set()
        self._heap: list[Entry] = []  # waiting trials (with stale entries)

    def __len__(self) -> int:
        return len(self.values)

    def entry(self, tid: str) -> Entry:
        return (self._key(self.values[tid]), tid)

    def record(self, tid: str, value: float) -> None:
        if tid in self.values:  # recorded again (a restored trial): replace its entry
            old = self.entry(tid)
            i = bisect_left(self._order, old)
            if i < len(self._order) and self._order[i] == old:
                del self._order[i]
        self.values[tid] = value
        insort(self._order, self.entry(tid))
        if tid in self._waiting:
            heapq.heappush(self._heap, self.entry(tid))

    def rank(self, tid: str) -> int:
        """0 for the best record of the rung."""
        return bisect_left(self._order, self.entry(tid))

    def quota(self, eta: float, exhausted: bool) -> int:
        """How many of the rung's best may be promoted: ``floor(n / eta)``, and at least
        the best one once no config will arrive any more."""
        q = int(len(self.values) / eta + EPS)
        return max(1, q) if exhausted else q

    def promotable(self, tid: str, eta: float, exhausted: bool) -> bool:
        return (
            tid in self._waiting
            and tid not in self.promoted
            and math.isfinite(self.values.get(tid, math.nan))
            and self.rank(tid) < self.quota(eta, exhausted)
        )

    # -- who waits here ----------------------------------------------------------------
    def wait(self, tid: str) -> None:
        self._waiting.add(tid)
        if tid in self.values:
            heapq.heappush(self._heap, self.entry(tid))

    def unwait(self, tid: str) -> None:
        self._waiting.discard(tid)

    def promote(self, tid: str) -> None:
        self._waiting.discard(tid)
        self.promoted.add(tid)

    def waiting(self) -> set[str]:
        return self._waiting

    def _live(self, e: Entry) -> bool:
        tid = e[1]
        return tid in self._waiting and tid not in self.promoted and self.entry(tid) == e

    def best_waiting(self, ok: Callable[[str], bool], eta: float, exhausted: bool) -> str | None:
        """The best trial waiting here that ``ok`` accepts, if it is promotable."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        if not heap:
            return None
        quota = self.quota(eta, exhausted)
        if ok(heap[0][1]):  # the usual case: one look
            tid = heap[0][1]
            return tid if self._promotable_entry(heap[0], quota) else None
        skipped = []  # rare: the best is not yet PAUSED (its pause is in flight)
        found = None
        while heap:
            e = heapq.heappop(heap)
            if not self._live(e):
                continue
            skipped.append(e)
            if not self._promotable_entry(e, quota):
                break  # ranked by the same key: nobody after it is promotable either
            if ok(e[1]):
                found = e[1]
                break
        for e in skipped:
            heapq.heappush(heap, e)
        return found

    def _promotable_entry(self, e: Entry, quota: int) -> bool:
        return math.isfinite(self.values[e[1]]) and bisect_left(self._order, e) < quota
