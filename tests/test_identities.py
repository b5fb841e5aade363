"""Who is who in the CPU default: norfair's tracks plus our distance, size bound and
re-identification, driven with poses whose geometry is known."""

from __future__ import annotations

import numpy as np

from daemon.processing.backends.mediapipe.identities import IdentityTracker
from daemon.processing.backends.mediapipe.landmarks import Pose
from daemon.processing.backends.mediapipe.roi import Roi

SHAPE = np.random.default_rng(7).uniform([-50, -150], [50, 150], size=(33, 2))  # one body, 100 x 300 px


def pose(x: float, y: float = 400.0, scale: float = 1.0) -> Pose:
    keypoints = np.column_stack([SHAPE * scale + (x, y), np.ones(33)])
    region = Roi(centre=np.array([x, y]), size=400.0 * scale, rotation=0.0)
    return Pose(keypoints=keypoints, world=np.zeros((33, 3)), presence=1.0, roi=region, next_roi=region)


def tracker() -> IdentityTracker:
    return IdentityTracker(max_distance=0.5, max_missing_frames=30)


def test_a_walker_keeps_one_id_and_a_second_person_gets_another():
    ids = tracker()
    seen = [ids.assign([pose(100 + 5 * i), pose(900 - 5 * i)]) for i in range(20)]
    assert seen == [[1, 2]] * 20


def test_a_pose_folded_into_a_third_of_the_body_is_not_that_person():
    """As someone goes behind a nearer person, the landmark network can fold their whole pose
    into the sliver still visible, in place. That pose gets an id of its own (confirmation then
    drops it unless it lasts); the whole body, seen again, gets its own id back."""
    ids = tracker()
    before = [ids.assign([pose(100 + 5 * i)]) for i in range(10)]
    folded = ids.assign([pose(150, scale=0.3)])
    unseen = [ids.assign([]) for _ in range(5)]
    back = [ids.assign([pose(100 + 5 * i)]) for i in range(16, 20)]
    assert before == [[1]] * 10 and unseen == [[]] * 5
    assert folded != [1]
    assert back == [[1]] * 4


def test_a_person_walking_towards_the_camera_keeps_their_id():
    """Growing 3 % a frame (2.4x in a second at 30 fps) is a body coming closer, not a swap."""
    ids = tracker()
    assert [ids.assign([pose(400 + 2 * i, scale=1.03**i)]) for i in range(30)] == [[1]] * 30


def test_a_lost_person_is_found_again_at_their_size_only():
    """Re-identification offers a lost id to a pose it could have reached in the time, and only
    at a size the body could have in that time."""
    ids = tracker()
    for i in range(10):
        ids.assign([pose(100 + 5 * i)])
    for _ in range(3):
        ids.assign([])
    assert ids.assign([pose(170, scale=0.25)]) != [1]  # a small someone where they were last
    assert ids.assign([pose(170)]) == [1]


def test_a_person_seen_in_part_while_coming_out_keeps_their_id_when_seen_whole():
    """Coming out from behind someone: unseen, then seen in part (a pose half their size) for a
    few frames, then whole. The whole body grows back to the size they had, not past it: the
    same person, the same id."""
    ids = tracker()
    before = [ids.assign([pose(100 + 5 * i)]) for i in range(10)]
    unseen = [ids.assign([]) for _ in range(5)]
    in_part = [ids.assign([pose(100 + 5 * i, scale=0.55)]) for i in range(15, 18)]
    whole = [ids.assign([pose(100 + 5 * i)]) for i in range(18, 22)]
    assert before == [[1]] * 10 and unseen == [[]] * 5
    assert in_part == [[1]] * 3 and whole == [[1]] * 4


def test_a_small_persons_id_never_grows_into_a_large_one():
    """A small person, then in their place someone twice their size (a nearer person stepping
    in front): never the small person's id, however the small one was seen before."""
    ids = tracker()
    small = [ids.assign([pose(400, scale=0.5)]) for _ in range(10)]
    assert small == [[1]] * 10
    assert ids.assign([pose(400, scale=1.0)]) != [1]


def test_a_person_stepping_into_the_frame_seen_in_part_keeps_their_id_when_whole():
    """Entering at the right edge, as on the mirrored skier clip: the landmark network sees half a
    body and folds the whole pose into it (a third of their size), at first with some keypoints
    past the edge, then wholly inside the frame; unseen for a few frames; then in, whole, holding
    everything seen before. No growth rule allows a body three times larger, but the body was
    seen cut by the frame's edge lately: the same person, the same id."""
    ids = IdentityTracker(max_distance=0.5, max_missing_frames=30, frame_size=(1000, 800))
    in_part = [ids.assign([pose(x, scale=0.35)]) for x in (990, 970, 960)]
    unseen = [ids.assign([]) for _ in range(3)]
    assert in_part == [[1]] * 3 and unseen == [[]] * 3
    assert ids.assign([pose(925)]) == [1]


def test_a_person_seen_in_part_behind_someone_keeps_their_id_when_whole():
    """Half behind a larger person (whose box covers theirs), folded into the part seen; then
    out, whole, holding that part: their id, while the person in front keeps theirs."""
    ids = tracker()
    in_part = [ids.assign([pose(500, scale=1.2), pose(540, scale=0.35)]) for _ in range(3)]
    assert in_part == [[1, 2]] * 3
    assert ids.assign([pose(470, scale=1.2), pose(560)]) == [1, 2]


def test_a_small_body_seen_whole_in_the_open_never_passes_its_id_to_a_large_one_holding_it():
    """The same growth, but the small body was seen in the open, inside the frame, with nobody
    in front: it was whole, so the large body holding it is someone else."""
    ids = IdentityTracker(max_distance=0.5, max_missing_frames=30, frame_size=(1000, 800))
    small = [ids.assign([pose(500, scale=0.35)]) for _ in range(3)]
    assert small == [[1]] * 3
    assert ids.assign([pose(500)]) != [1]


def test_how_far_a_lost_person_may_have_gone_is_per_second_not_per_frame():
    """Lost behind someone for 0.67 s and found again 1.05 body sizes on (1.5 body sizes/s, a
    jog): the same id at 15 frames/s (10 frames unseen) as at 30 (20 frames unseen). Counted per
    frame, the 15 fps video allowed half the way, and the person came back under a new id."""
    size = float(np.linalg.norm(np.ptp(SHAPE, axis=0)))  # the tracker's body size: the keypoints' diagonal
    for fps, unseen in ((30.0, 20), (15.0, 10)):
        ids = IdentityTracker(max_distance=0.5, max_missing_frames=round(fps), fps=fps)
        assert ids.assign([pose(100.0)]) == [1]
        assert [ids.assign([]) for _ in range(unseen)] == [[]] * unseen
        assert ids.assign([pose(100.0 + 1.05 * size)]) == [1], fps
