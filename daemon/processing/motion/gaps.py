"""Gap filling: a track missed for a few frames and then detected again gets those frames
rewritten by interpolation between the two detections.

Not when the re-detection sees more of the body than the detection before the gap, with all
that was seen before inside it: someone stepping into the frame or out from behind another
person was seen in part, their pose folded into that part by the model, and a line from the
fold to the whole body is no motion anybody made (on the mirrored skier clip such fills scored
OKS 0.14 and 0.28). Those frames stay without the person.

The frames of a gap are still in the stage's look-ahead buffer when the re-detection arrives:
the buffer holds ``max_gap_frames`` frames beyond the one about to be emitted, and a gap is
only filled if it is at most that long. A longer gap cannot be filled any more once its
frames are emitted, so the track's last detection is forgotten then: memory holds one
person per live track, never more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.processing.motion.identity import seen_more_of
from daemon.processing.motion.interpolate import can_interpolate, interpolate_person
from daemon.records import FrameResult, Person

STATE_DETECTED = "detected"


@dataclass
class PendingFrame:
    """A frame waiting in the look-ahead buffer; ``position`` counts frames pushed (0-based)."""

    position: int
    result: FrameResult


@dataclass
class _Detection:
    person: Person
    position: int
    timestamp_s: float


class GapFiller:
    """Remembers each track's last detection and fills its short gaps inside the buffer."""

    def __init__(self, max_gap_frames: int) -> None:
        self.max_gap_frames = max_gap_frames
        self._last_detection: dict[int, _Detection] = {}

    @property
    def tracks_remembered(self) -> int:
        return len(self._last_detection)

    def observe(self, buffer: Sequence[PendingFrame]) -> None:
        """Look at the newest buffered frame: fill the gaps its detections close."""
        newest = buffer[-1]
        for person in newest.result.people:
            if person.state != STATE_DETECTED:
                continue
            last = self._last_detection.get(person.track_id)
            if last is not None and 0 < newest.position - last.position - 1 <= self.max_gap_frames:
                if can_interpolate(last.person, person) and not seen_more_of(last.person.keypoints, person.keypoints):
                    self._fill(buffer, last, _Detection(person, newest.position, newest.result.timestamp_s))
            self._last_detection[person.track_id] = _Detection(person, newest.position, newest.result.timestamp_s)
        self._forget_unfillable(newest.position)

    def _fill(self, buffer: Sequence[PendingFrame], before: _Detection, after: _Detection) -> None:
        first_position = buffer[0].position
        track_id = after.person.track_id
        for position in range(before.position + 1, after.position):
            pending = buffer[position - first_position]
            people = pending.result.people
            slot = next((i for i, p in enumerate(people) if p.track_id == track_id), None)
            person = interpolate_person(
                before.person,
                after.person,
                _fraction(before, after, position, pending.result.timestamp_s),
                frames_since_detection=position - before.position,
                raw=None if slot is None else people[slot],
            )
            if slot is None:
                people.append(person)
            else:
                people[slot] = person

    def _forget_unfillable(self, newest_position: int) -> None:
        """A detection max_gap_frames + 1 frames old with nothing since can close no fillable
        gap any more: drop it (tracks die in long videos; their memory must go with them)."""
        horizon = newest_position - self.max_gap_frames
        for track_id in [t for t, d in self._last_detection.items() if d.position < horizon]:
            del self._last_detection[track_id]


def _fraction(before: _Detection, after: _Detection, position: int, timestamp_s: float) -> float:
    """Where a frame lies between two detections: by timestamp (variable frame rates), by
    position when the timestamps do not advance (damaged files)."""
    span = after.timestamp_s - before.timestamp_s
    if span > 0 and before.timestamp_s <= timestamp_s <= after.timestamp_s:
        return (timestamp_s - before.timestamp_s) / span
    return (position - before.position) / (after.position - before.position)


__all__ = ["GapFiller", "PendingFrame"]
