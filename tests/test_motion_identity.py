"""The motion stage never bridges two people: a track that jumps further than a body can move
in that time continues under a new id, with no interpolation and no filter state across the jump."""

from __future__ import annotations

import json

import numpy as np

from daemon.processing.motion import MotionStage
from daemon.records import FrameResult, Person
from tests.test_motion_stage import FPS, frame, person, run_stage, settings, track


def moved(p: Person, dx: float, dy: float = 0.0, scale: float = 1.0) -> Person:
    """``p`` shifted by (dx, dy) px and scaled about its keypoints' centre."""
    keypoints = p.keypoints.copy()
    centre = keypoints[:, :2].mean(0)
    keypoints[:, :2] = (keypoints[:, :2] - centre) * scale + centre + (dx, dy)
    x, y, w, h = p.bbox_xywh
    return Person(p.track_id, p.state, p.confidence, (x + dx, y + dy, w * scale, h * scale), keypoints, p.joints_3d)


def teleporting(jump_at: int, frames: int = 40, *, dx: float = 2100.0, scale: float = 1.0, gap: range = range(0)) -> list[FrameResult]:
    """One backend track (id 1) that is a second person from ``jump_at`` on; missed in ``gap``.
    The default jump is 3 body sizes (the synthetic person is 700 px tall)."""
    results = []
    for i in range(frames):
        p = person(i / FPS)
        if i >= jump_at:
            p = moved(p, dx, scale=scale)
        results.append(frame(i, [] if i in gap else [p]))
    return results


def body_size(p: Person) -> float:
    return float(np.max(p.keypoints[:, :2].max(0) - p.keypoints[:, :2].min(0)))


def test_a_track_that_teleports_continues_under_a_new_id_with_nothing_bridged():
    frames = teleporting(20)
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert [p.track_id for r in out[:20] for p in r.people] == [1] * 20
    assert [p.track_id for r in out[20:] for p in r.people] == [2] * 20  # a fresh id, never used before
    second = track(out, 2)
    # The new track is smoothed from its own frames only: as if the first person had never been.
    alone = [frame(i, [] if i < 20 else list(f.people)) for i, f in enumerate(frames)]
    unmixed = track(run_stage(MotionStage(settings(), FPS), alone))
    assert all(np.array_equal(second[i].keypoints, unmixed[i].keypoints) for i in range(20, 40))
    assert max(abs(second[i].keypoints[:, 0] - frames[i].people[0].keypoints[:, 0]).max() for i in range(20, 40)) < 20
    summary = json.loads(json.dumps(stage.summary()))
    assert summary["identity_breaks"] == 1
    assert summary["tracks"] == [
        {"track_id": 1, "detected": 20, "predicted": 0, "interpolated": 0},
        {"track_id": 2, "detected": 20, "predicted": 0, "interpolated": 0, "split_from": 1},
    ]


def test_a_gap_across_a_jump_is_not_filled_and_neither_side_is_smoothed_towards_the_other():
    frames = teleporting(20, gap=range(15, 20))  # missed for 5 frames, then found somewhere else
    out = run_stage(MotionStage(settings(), FPS), frames)
    assert all(r.people == [] for r in out[15:20])  # nothing interpolated between two people
    first, second = track(out, 1), track(out, 2)
    assert sorted(first) == list(range(15)) and sorted(second) == list(range(20, 40))
    last_x = frames[14].people[0].keypoints[:, 0]
    assert np.all(np.abs(first[14].keypoints[:, 0] - last_x) < 20)  # not pulled 2100 px to the right


def test_a_sudden_change_of_body_size_in_place_is_another_person():
    frames = teleporting(20, dx=0.0, scale=0.5)  # someone half as big, standing where the first was
    out = run_stage(MotionStage(settings(), FPS), frames)
    assert {p.track_id for r in out[20:] for p in r.people} == {2}


def test_fast_but_possible_motion_keeps_its_id():
    # 9 body sizes per second, steadily, and the body growing by 10 % per frame for a few frames:
    # fast, still under the bounds (10 sizes/s; 1.5x plus ln-rate 2/s), so one person, one id.
    base = person(0.0)
    speed_px = 9.0 * body_size(base) / FPS
    frames = [frame(i, [moved(person(i / FPS), speed_px * i, scale=1.1 ** min(i, 5))]) for i in range(30)]
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out for p in r.people} == {1} and stage.summary()["identity_breaks"] == 0


def test_the_bound_is_per_second_so_a_long_gap_allows_a_longer_way():
    # 3 body sizes are too far for one frame but not for the 0.4 s of a 12-frame gap: filled, one id.
    size = body_size(person(0.0))
    dx = 3.0 * size  # 3 sizes: 90 sizes/s over one frame, 7.5 sizes/s over 0.4 s
    one_frame = run_stage(MotionStage(settings(), FPS), teleporting(20, dx=dx))
    assert {p.track_id for r in one_frame[20:] for p in r.people} == {2}
    after_gap = run_stage(MotionStage(settings(), FPS), teleporting(20, dx=dx, gap=range(8, 20)))
    assert {p.track_id for r in after_gap for p in r.people} == {1}
    assert [after_gap[i].people[0].state for i in range(8, 20)] == ["interpolated"] * 12


def test_a_new_id_never_collides_with_one_the_backend_hands_out_later():
    # Backend track 1 jumps (becomes output 3, after the 2 already seen); later the backend
    # starts its own track 3: it must not join the split track, so it gets a fresh id too.
    results = []
    for i in range(40):
        people = [person(i / FPS, 1) if i < 10 else moved(person(i / FPS, 1), 900.0), person(i / FPS, 2)]
        if i >= 30:
            people.append(person(i / FPS, 3))
        results.append(frame(i, people))
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, results)
    assert [p.track_id for p in out[5].people] == [1, 2]
    assert [p.track_id for p in out[15].people] == [3, 2]
    assert [p.track_id for p in out[35].people] == [3, 2, 4]
    assert [t["track_id"] for t in stage.summary()["tracks"]] == [1, 2, 3, 4]
    assert results[15].people[0].track_id == 1  # the caller's people keep the backend's id


def test_predicted_people_follow_their_tracks_current_id():
    frames = teleporting(10, frames=20)
    frames[15] = frame(15, [Person(1, "predicted", 0.5, frames[14].people[0].bbox_xywh, frames[14].people[0].keypoints)])
    out = run_stage(MotionStage(settings(max_gap_s=0.0), FPS), frames)
    assert out[15].people[0].track_id == 2 and out[15].people[0].state == "predicted"


def test_keypoints_that_flail_or_are_not_seen_do_not_break_a_track():
    """A small, half-hidden body: the model's keypoints spread by +-30 % from frame to frame
    (measured on a real clip's worst track), and the lower body is hidden (confidence 0) in
    every other frame with its keypoints thrown far off. Still one person."""
    frames = []
    for i in range(30):
        p = moved(person(i / FPS), 0.0, scale=1.3 if i % 2 else 1.0)
        if i % 3 == 0:
            p.keypoints[20:, :2] += 3000.0  # guessed far away...
            p.keypoints[20:, 2] = 0.0  # ...and marked unseen
        frames.append(frame(i, [p]))
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out for p in r.people} == {1} and stage.summary()["identity_breaks"] == 0


def test_too_few_keypoints_seen_in_both_detections_say_nothing():
    frames = teleporting(20)
    for i in (19, 20):
        frames[i].people[0].keypoints[3:, 2] = 0.1  # only 3 keypoints seen on each side of the jump
    out = run_stage(MotionStage(settings(), FPS), frames)
    assert {p.track_id for r in out[:21] for p in r.people} == {1}  # the jump is not judged...
    assert {p.track_id for r in out[21:] for p in r.people} == {1}  # ...and the next frame matches frame 20


def test_one_folded_detection_is_the_backends_mistake_not_another_person():
    """A person going behind someone: for one frame the backend folds their pose into a third of
    its size, then sees the whole body again. The break is undone while the folded detection is
    still in the look-ahead buffer: one id throughout, the folded frame dropped and filled from
    its neighbours, no break counted."""
    frames = [frame(i, [moved(person(i / FPS), 0.0, scale=0.3) if i == 20 else person(i / FPS)]) for i in range(40)]
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert [[p.track_id for p in r.people] for r in out] == [[1]] * 40
    assert out[20].people[0].state == "interpolated"
    size = body_size(out[20].people[0])
    assert abs(size / body_size(person(20 / FPS)) - 1) < 0.05  # the whole body, not the fold
    summary = stage.summary()
    assert summary["identity_breaks"] == 0 and "split_from" not in summary["tracks"][0]


def test_a_misread_first_sighting_is_dropped_not_made_a_person():
    """Someone stepping into the frame is read, in their first frame or two, as a fold that the
    whole body seen next does not hold (far between frames at a low frame rate). Those first
    detections are the backend's misreading: dropped while still buffered, and the body goes on
    under one id with no break. Three of them are a person of their own: the break stands."""
    for misread, breaks in ((1, 0), (2, 0), (3, 1)):
        frames = [frame(i, [moved(person(i / FPS), 600.0, scale=0.3) if i < misread else person(i / FPS)]) for i in range(30)]
        stage = MotionStage(settings(), FPS)
        out = run_stage(stage, frames)
        body_ids = {p.track_id for r in out[misread:] for p in r.people}
        assert len(body_ids) == 1 and all(len(r.people) == 1 for r in out[misread:])
        assert stage.summary()["identity_breaks"] == breaks
        if breaks == 0:
            assert all(r.people == [] for r in out[:misread])
            assert [t["track_id"] for t in stage.summary()["tracks"]] == list(body_ids)
        else:
            assert {p.track_id for r in out[:misread] for p in r.people} == {1} and body_ids == {2}


def test_a_misread_start_after_a_break_keeps_the_break_and_its_take_back():
    """A fold (a break: new id) followed by a body elsewhere: the fold is the new track's misread
    start and goes, and the body's track is the one that split from the first, in the summary
    too. When the first body then comes back while all that is still buffered, the break is
    taken back as for any mistake: one id throughout, the frames between filled."""
    def at(i: int, back: int) -> Person:
        if i < 20 or i >= back:
            return person(i / FPS)
        return moved(person(i / FPS), 0.0, scale=0.3) if i == 20 else moved(person(i / FPS), 900.0)

    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, [frame(i, [at(i, back=40)]) for i in range(40)])
    assert out[20].people == [] and {p.track_id for r in out[21:] for p in r.people} == {3}
    summary = stage.summary()
    assert summary["identity_breaks"] == 1
    assert summary["tracks"][1] == {"track_id": 3, "detected": 19, "predicted": 0, "interpolated": 0, "split_from": 1}

    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, [frame(i, [at(i, back=24)]) for i in range(40)])
    assert [[p.track_id for p in r.people] for r in out] == [[1]] * 40
    assert [out[i].people[0].state for i in range(20, 24)] == ["interpolated"] * 4
    assert stage.summary()["identity_breaks"] == 0


def test_a_break_stands_once_its_detections_have_left_the_buffer():
    """The same fold, but the body is seen again only after the buffer has released the folded
    frame: nothing can be taken back, so the fold keeps the id it was given, and the body after
    it is judged against the fold (a seventh of its size: more than 0.6 s of growth allows, so
    another break)."""
    stage = MotionStage(settings(), FPS)
    gap = range(21, 21 + stage.latency_frames + 2)
    frames = [frame(i, [] if i in gap else [moved(person(i / FPS), 0.0, scale=0.15) if i == 20 else person(i / FPS)]) for i in range(60)]
    out = run_stage(stage, frames)
    assert [p.track_id for p in out[19].people] == [1] and [p.track_id for p in out[20].people] == [2]
    assert {p.track_id for r in out[gap.stop:] for p in r.people} == {3}
    assert stage.summary()["identity_breaks"] == 2


def test_a_track_that_comes_back_after_a_stint_on_someone_else_gets_its_id_back():
    """The backend's track follows a second person for a few frames (buffered), then the first
    again: the first keeps id 1, and the second person's frames under that track are dropped."""
    frames = teleporting(20, frames=40)
    for i in range(24, 40):
        frames[i] = frame(i, [person(i / FPS)])
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out for p in r.people} == {1}
    assert [out[i].people[0].state for i in range(20, 24)] == ["interpolated"] * 4


def test_a_body_seen_in_part_that_grows_back_to_its_size_is_one_person():
    """Unseen behind someone for 10 frames, seen in part (less than half the size) for 4, then
    whole: the growth back to the size it had 0.5 s ago is no break."""
    frames = []
    for i in range(46):
        p = person(i / FPS)
        frames.append(frame(i, [] if 20 <= i < 30 else [moved(p, 0.0, scale=0.45) if 30 <= i < 34 else p]))
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out for p in r.people} == {1}
    assert stage.summary()["identity_breaks"] == 0


def in_part(p: Person, *, seen: float = 2 / 3, folded: float = 0.4) -> Person:
    """``p`` seen in part, as the backend reads someone half behind another person: only the
    top ``seen`` of the keypoints marked seen, and those drawn towards the head (the network
    folds the body into what it sees), the rest guessed and marked unseen."""
    keypoints = p.keypoints.copy()
    top = keypoints[0, :2].copy()
    count = round(len(keypoints) * seen)
    keypoints[:count, :2] = top + (keypoints[:count, :2] - top) * folded
    keypoints[count:, 2] = 0.0
    return Person(p.track_id, p.state, p.confidence, p.bbox_xywh, keypoints, p.joints_3d)


def test_a_body_coming_into_view_is_one_person_though_never_seen_whole_before():
    """Someone steps out from behind another person: seen in part from their first frame, then
    whole. Their part-pose was folded (its shared keypoints span 0.4 of the whole body's), so
    the size alone says "another body"; but the whole body holds everything seen before, with
    more of it seen: one person, one id."""
    frames = [frame(i, [in_part(person(i / FPS)) if i < 20 else person(i / FPS)]) for i in range(40)]
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out for p in r.people} == {1}
    assert stage.summary()["identity_breaks"] == 0


def test_a_larger_body_elsewhere_is_another_person_however_much_of_it_is_seen():
    """The same part-seen track, then a whole body beside where the part was: more keypoints
    seen, but the part does not lie in it: another person."""
    frames = [frame(i, [in_part(person(i / FPS)) if i < 20 else moved(person(i / FPS), 600.0)]) for i in range(40)]
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out[:20] for p in r.people} == {1}
    assert {p.track_id for r in out[20:] for p in r.people} == {2}
    assert stage.summary()["identity_breaks"] == 1


def test_a_gap_between_a_part_seen_and_the_whole_body_is_not_filled():
    """Seen in part (folded into the top of the body), missed for 3 frames, then whole: one
    person, but a line from the fold to the whole body is no motion anybody made, so the 3
    frames stay without them; a gap between two whole sightings is filled as before."""
    frames = [frame(i, [] if i in (20, 21, 22, 30, 31) else [in_part(person(i / FPS)) if i < 20 else person(i / FPS)]) for i in range(40)]
    out = run_stage(MotionStage(settings(), FPS), frames)
    assert {p.track_id for r in out for p in r.people} == {1}
    assert [len(out[i].people) for i in (20, 21, 22)] == [0, 0, 0]
    assert [out[i].people[0].state for i in (30, 31)] == ["interpolated"] * 2


def test_a_body_seen_whole_and_in_part_in_turn_keeps_its_id_under_a_whip_pan():
    """A small skier at the frame's edge in a fast pan is read whole in one frame and only in
    part (the top of the body; the rest out of view, marked unseen) in the next, while the
    camera sweeps them 150 px a frame. Both detections share only the top part, so measured in
    that part's size the sweep is 15 body sizes a second, past the 10 allowed; measured in the
    body's size as seen it is 7: one person, no break."""
    frames = []
    for i in range(40):
        p = moved(person(i / FPS), 200.0 * i)
        frames.append(frame(i, [in_part(p, folded=1.0) if i % 2 else p]))
    shared = in_part(frames[1].people[0], folded=1.0).keypoints
    part = body_size(Person(1, "detected", 0.9, (0, 0, 1, 1), shared[shared[:, 2] >= 0.5], None))
    whole = body_size(frames[0].people[0])
    assert 200.0 * FPS / part > 10 > 200.0 * FPS / whole  # the case this test is about
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out for p in r.people} == {1}
    assert stage.summary()["identity_breaks"] == 0


def test_someone_hidden_for_a_second_and_found_again_folded_then_whole_is_one_person():
    """Seen whole for 20 frames (walking slowly away, so each sighting is a little smaller than
    the first), hidden for 1 s (the backend's max_missing_s: it gives the id back), seen first as
    a fold a third of their size, then whole. The size they grow back to is the one they were
    last seen at, 1.07 s before the whole body comes back, not the one of their first sighting
    1.7 s before: one person, no break."""
    frames = []
    for i in range(70):
        p = moved(person(i / FPS), 0.0, scale=1.0 - 0.003 * min(i, 19))
        frames.append(frame(i, [] if 20 <= i < 50 else [moved(p, 0.0, scale=0.3) if i == 50 else p]))
    stage = MotionStage(settings(), FPS)
    out = run_stage(stage, frames)
    assert {p.track_id for r in out for p in r.people} == {1}
    assert stage.summary()["identity_breaks"] == 0
