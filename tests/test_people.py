"""Where the landmark network looks each frame: tracked people, then new finds whose face is
nobody's followed already (people.regions_to_look), with poses whose geometry is known."""

from __future__ import annotations

import numpy as np

from daemon.processing.backends.mediapipe.detector import Detection
from daemon.processing.backends.mediapipe.landmarks import Pose
from daemon.processing.backends.mediapipe.people import distinct_people, regions_to_look
from tests.test_identities import pose


def find(face: tuple[float, float], hips: tuple[float, float] | None = None, score: float = 0.9) -> Detection:
    """A detector find: a 60 px face box, and the alignment points of a body 160 px from hips to
    top (a 400 px region, as the helper pose's), its hips 130 px below the face unless given."""
    fx, fy = face
    centre = np.array(hips if hips is not None else (fx, fy + 130), dtype=float)
    box = np.array([fx - 30, fy - 30, fx + 30, fy + 30])
    return Detection(score=score, box=box, keypoints=np.array([centre, centre - (0, 160), centre - (0, 100), centre - (0, 140)]))


def test_a_find_on_a_followed_face_is_not_looked_at_again_but_a_neighbours_face_is():
    """The neighbour stands 40 px to the side, partly behind: their region overlaps the followed
    person's by far more than half (a region test would call them the same person), but their
    face is not the followed person's head."""
    followed = pose(400.0)
    head = followed.keypoints[:11, :2].mean(axis=0)  # BlazePose's first 11 points: the face
    neighbour = find((head[0] + 70, head[1]), hips=(440.0, 400.0))
    looks = regions_to_look([followed], [find(tuple(head)), neighbour], limit=5)
    assert len(looks) == 2 and looks[0].region is followed.next_roi
    regions = [look.region for look in looks]
    assert np.allclose(regions[1].centre, (440.0, 400.0))  # the new look is built on the neighbour's find
    overlap = np.minimum(regions[0].box()[2:], regions[1].box()[2:]) - np.maximum(regions[0].box()[:2], regions[1].box()[:2])
    assert overlap.prod() / (2 * 400.0**2 - overlap.prod()) > 0.5  # regions overlapping by IoU > 0.5


def test_two_finds_of_one_face_are_one_look_and_the_limit_holds():
    looks = regions_to_look([], [find((100, 100)), find((105, 102), score=0.8), find((600, 100)), find((900, 100))], limit=2)
    assert len(looks) == 2
    assert [round(float(look.region.centre[0])) for look in looks] == [100, 600]


def test_a_find_falls_back_to_an_upright_region_below_its_face_and_a_followed_person_does_not():
    """The detector put this find's hips beside its face (a misread of someone seated): the first
    region is centred there; the second hangs below the 60 px face, 8 faces wide, upright."""
    followed = pose(400.0)
    seated = find((900, 100), hips=(960.0, 110.0))
    tracked_look, new_look = regions_to_look([followed], [seated], limit=5)
    assert tracked_look.fallback is None  # a followed person is looked for where they went
    assert np.allclose(new_look.region.centre, (960.0, 110.0))
    assert np.allclose(new_look.fallback.centre, (900.0, 100.0 + 2.0 * 60))
    assert new_look.fallback.size == 8.0 * 60 and new_look.fallback.rotation == 0.0


def with_body(person: Pose, rows: slice, cols: slice) -> Pose:
    """``person`` with a segmentation mask whose body pixels are the given block of its 256 x 256 crop."""
    mask = np.zeros((256, 256), bool)
    mask[rows, cols] = True
    return Pose(keypoints=person.keypoints, world=person.world, presence=person.presence, roi=person.roi,
                next_roi=person.next_roi, body_mask=mask)


def test_a_small_person_standing_on_a_much_larger_body_is_a_part_of_it():
    """A hand or a phone read as a whole small person: its points lie on the body pixels of
    someone over 2.5x its size. The same small pose off that body, or on a body only 2x its
    size (a neighbour in a crowd), stays a person. Its box sticks out of the large person's, so
    the box test (``_is_part_of``) does not decide."""
    small = pose(560.0, y=300.0)  # box x 510-610: 40 % inside the large person's box (x 250-550)
    on_body = with_body(pose(400.0, scale=3.0), slice(None), slice(None))  # region x -200..1000, all body
    assert distinct_people([on_body, small], limit=5) == [on_body]

    beside = with_body(pose(400.0, scale=3.0), slice(None), slice(0, 64))  # body pixels at x < 100 only
    assert distinct_people([beside, small], limit=5) == [beside, small]

    twice = with_body(pose(400.0, scale=2.0), slice(None), slice(None))
    assert distinct_people([twice, small], limit=5) == [twice, small]
