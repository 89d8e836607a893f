"""Claimed messages waiting for a free slot, taken in turn from each mailing."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from notiflow.delivery.records import Claimed


class ReadyQueue:
    """A queue per mailing, served in turn: a ten-message mailing claimed after a
    million-message one goes out alongside it, not after all of it."""

    __slots__ = ("_queues", "_size")

    def __init__(self) -> None:
        self._queues: dict[int, deque[Claimed]] = {}  # in turn order: the first goes next
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Claimed]:
        for queue in self._queues.values():
            yield from queue

    def append(self, item: Claimed) -> None:
        queue = self._queues.get(item.mailing_id)
        if queue is None:
            queue = self._queues[item.mailing_id] = deque()
        queue.append(item)
        self._size += 1

    def popleft(self) -> Claimed:
        queues = self._queues
        mailing_id = next(iter(queues))
        queue = queues.pop(mailing_id)
        item = queue.popleft()
        self._size -= 1
        if queue:
            queues[mailing_id] = queue  # to the end of the turn
        return item

    def clear(self) -> None:
        self._queues.clear()
        self._size = 0
