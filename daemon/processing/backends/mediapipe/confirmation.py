"""A person is published once seen in ``confirm_frames`` consecutive frames.

The landmark network sometimes sees a body for a frame or two where there is none (a bag, a
shadow, the remains of someone turning away). A real person is seen frame after frame, so each
frame's results wait ``confirm_frames - 1`` frames: by then every track in them is either
confirmed (seen in that many consecutive frames, at any time so far) or dropped from that frame.
Latency: ``confirm_frames - 1`` frames; memory: that many frames' people.
"""

from __future__ import annotations

from collections import deque

from daemon.records import FrameResult


class TrackConfirmation:
    def __init__(self, confirm_frames: int) -> None:
        self._confirm = max(1, confirm_frames)
        self._pending: deque[FrameResult] = deque()
        self._streak: dict[int, int] = {}
        self._confirmed: set[int] = set()

    def push(self, result: FrameResult) -> list[FrameResult]:
        """This frame's results in; the frames whose wait is over out, in order."""
        seen = {person.track_id for person in result.people}
        self._streak = {track: self._streak.get(track, 0) + 1 for track in seen}
        self._confirmed |= {track for track, streak in self._streak.items() if streak >= self._confirm}
        self._pending.append(result)
        released = []
        while len(self._pending) >= self._confirm:
            released.append(self._release(self._pending.popleft()))
        return released

    def finish(self) -> list[FrameResult]:
        released = [self._release(result) for result in self._pending]
        self._pending.clear()
        return released

    def _release(self, result: FrameResult) -> FrameResult:
        result.people = [person for person in result.people if person.track_id in self._confirmed]
        return result
