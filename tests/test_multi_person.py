"""The CPU default finds everyone in the frame and keeps who is who: real networks, real videos."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from daemon.config import load_config
from daemon.errors import ConfigError
from daemon.processing.backends.mediapipe import MediapipeBackend
from daemon.processing.backends.mediapipe.detector import ssd_anchors
from daemon.processing.backends.mediapipe.roi import Roi
from daemon.processing.backends.mediapipe.tiles import TileSchedule, tile_pyramid
from daemon.processing.media import VideoSource
from daemon.publishing.reader import open_result
from scripts.make_crossing_clip import make_crossing_clip
from scripts.make_crowd_clip import make_crowd_clip
from tests.daemon_harness import REPO, drop, wait_outcome

MEDIA = REPO.parent / "shared" / "media"


def run_backend(path, overrides=(), frames=None):
    """Every frame of ``path`` through a real MediapipeBackend; the people of each frame."""
    cfg = load_config(None, list(overrides))
    backend = MediapipeBackend(cfg.backend.mediapipe)
    backend.load(lambda _: None)
    people = []
    with VideoSource(path, cfg.limits, cfg.inbox.extensions) as source:
        backend.start_video(source.meta, None)
        for frame in source.frames():
            if frames is not None and frame.index >= frames:
                break
            people.extend(result.people for result in backend.process(backend.preprocess(frame)))
        people.extend(result.people for result in backend.finish())
    return people, backend.summary()


def test_anchors_follow_mediapipes_ssd_layout():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)  # the detector's 2254 outputs, one per anchor
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[1], anchors[0])  # 2 per cell, stride 8
    assert np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])  # stride 32, 6 anchors per cell from three layers
    assert np.all((anchors > 0) & (anchors < 1))


def test_tiles_cover_the_frame_with_overlap_and_run_in_turn():
    tiles = tile_pyramid(1920, 1080, 2)
    assert tiles[0] == (0, 0, 1920, 1080)
    level1 = [t for t in tiles[1:] if t[2] - t[0] == 1080]
    level2 = [t for t in tiles[1:] if t[2] - t[0] == 540]
    assert len(level1) + len(level2) == len(tiles) - 1
    for level, side in ((level1, 1080), (level2, 540)):
        covered = np.zeros((1080, 1920), bool)
        for x0, y0, x1, y1 in level:
            covered[y0:y1, x0:x1] = True
        assert covered.all()
        xs = sorted({t[0] for t in level})
        assert all(b - a <= side * 0.75 + 1 for a, b in zip(xs, xs[1:]))  # neighbours overlap by >= 25 %
    assert tile_pyramid(200, 112, 2) == [(0, 0, 200, 112)]  # tiles under 128 px find nobody new

    schedule = TileSchedule(tiles, per_frame=2)
    assert schedule.next_tiles() == tiles  # the first frame searches everywhere
    seen = [tile for _ in range(len(tiles)) for tile in schedule.next_tiles()]
    assert set(seen) == set(tiles)
    assert schedule.next_tiles(searching=True)[0] == tiles[0]  # nobody tracked: whole frame too


def test_a_region_crops_and_maps_back_exactly():
    image = np.zeros((400, 600, 3), np.uint8)
    image[250, 420] = 255
    roi = Roi.from_alignment(np.array([400.0, 240.0]), np.array([440.0, 180.0]))  # a leaning body
    crop = roi.crop(image, 256)
    row, col = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    back = roi.to_frame(np.array([[(col + 0.5) / 256, (row + 0.5) / 256]]))[0]
    assert np.hypot(*(back - [420.5, 250.5])) < roi.size / 256 * 1.5
    points = np.array([[420.0, 250.0], [0.0, 0.0], [380.5, 199.25]])
    assert np.allclose(roi.to_frame(roi.to_crop(points)), points)  # frame -> crop -> frame, rotated


def test_a_phone_in_a_hand_is_not_a_person(tmp_path):
    """OCHuman's image 000817 (from mmpose's test data; tests/data/eval/README.md): three people walk towards the
    camera, the woman in the middle holding a phone by her thigh. The landmark network, looking
    at a face the detector saw in that hand, read a 150 px person standing on her; it lasted
    every frame, so confirmation published it. The three people are 500-670 px (diagonal)."""
    from daemon.evaluation.eval_video import build_eval_videos

    ochuman = REPO / "tests" / "data" / "eval" / "ochuman"
    build_eval_videos(ochuman / "test_ochuman.json", ochuman, tmp_path)  # as posed eval-video makes them
    people, _ = run_backend(tmp_path / "000817.mp4")
    assert len(people) == 10
    for frame in people:
        sizes = sorted(float(np.hypot(p.bbox_xywh[2], p.bbox_xywh[3])) for p in frame)
        assert len(sizes) == 3 and sizes[0] > 400, sizes


def test_a_seated_man_whose_hips_the_detector_misplaces_is_found_below_his_face(tmp_path):
    """COCO's image 000000040083 (tests/data/eval/README.md): two men seated on low stools, one on
    each side of a street stall. The detector finds the right-hand man's face, but the region
    built on its guess of his hips shows the landmark network nobody; the second look, an
    upright region below his face, finds him. Both are matched to COCO's own annotations."""
    from daemon.evaluation.annotations import load_annotations
    from daemon.evaluation.eval_video import build_eval_videos

    coco = REPO / "tests" / "data" / "eval" / "coco"
    build_eval_videos(coco / "test_coco.json", coco, tmp_path)  # as posed eval-video makes them
    people, _ = run_backend(tmp_path / "000000040083.mp4")
    annotations = load_annotations(coco / "test_coco.json")
    image = next(image for image in annotations.images if image.image_id == 40083)
    assert len(image.scored_people) == 2 and len(people) == 10
    best = _oks_of_matched(people, annotations, 40083)
    assert (best[:, 0] >= 0.6).all(), best  # the left-hand man, found on every frame (OKS ~0.7)
    # The right-hand man on 5 of the 10 frames (before the second look: none; 7 when confirmation
    # took three sightings, 4 drops his first ones); the motion stage fills the frames between.
    assert (best[:, 1] >= 0.6).sum() >= 5, best


def test_every_pedestrian_on_the_street_is_found_with_a_lasting_id():
    # All three are seen from behind, where the network is least sure of its reading: the
    # default publishes two of them (see the next test); this one is about finding and ids.
    people, summary = run_backend(MEDIA / "street-5frames.mp4", ["backend.mediapipe.min_keypoint_certainty=0"])
    assert len(people) == 5
    assert all(len(frame) >= 3 for frame in people)
    first_ids = {p.track_id for p in people[0]}
    for frame in people[1:]:
        assert first_ids <= {p.track_id for p in frame}
        assert len({p.track_id for p in frame}) == len(frame)
    assert summary["max_people_in_a_frame"] >= 3


def test_one_person_mode_keeps_only_the_most_confident_person():
    every_reading = "backend.mediapipe.min_keypoint_certainty=0"  # the street's people are seen from behind
    everyone, _ = run_backend(MEDIA / "street-5frames.mp4", [every_reading])
    one, _ = run_backend(MEDIA / "street-5frames.mp4", ["backend.mediapipe.max_people=1", every_reading])
    assert [len(frame) for frame in one] == [1] * 5
    best = max(everyone[0], key=lambda p: p.confidence)
    assert np.allclose(one[0][0].keypoints, best.keypoints)


def test_a_single_runner_matches_mediapipes_own_graph():
    """The same networks as mp.solutions.pose: its landmarks, within what its ROI smoothing moves."""
    import mediapipe as mp

    ours, _ = run_backend(MEDIA / "running-1080p.mp4", frames=30)
    cfg = load_config(None, [])
    medians = []
    with VideoSource(MEDIA / "running-1080p.mp4", cfg.limits, cfg.inbox.extensions) as source, \
            mp.solutions.pose.Pose(static_image_mode=False, smooth_landmarks=False) as legacy:
        for frame, people in zip(source.frames(), ours):
            height, width = frame.image.shape[:2]
            found = legacy.process(frame.image[..., ::-1].copy())
            theirs = np.array([(lm.x * width, lm.y * height) for lm in found.pose_landmarks.landmark])
            runner = min(people, key=lambda p: np.linalg.norm(p.keypoints[:, :2] - theirs, axis=1).mean())
            medians.append(np.median(np.linalg.norm(runner.keypoints[:, :2] - theirs, axis=1)))
    assert len(medians) == 30
    assert np.median(medians) < 4.0  # pixels on a 1920x1088 frame


def test_a_person_is_published_once_seen_in_enough_frames():
    """A body seen for one or two frames (a bag, a shadow) is dropped; a person seen in three is
    published from their first frame on, also when seen now and then; every frame comes out
    once, in order."""
    from daemon.processing.backends.mediapipe.confirmation import TrackConfirmation
    from daemon.records import FrameResult, Person

    def person(track_id):
        return Person(track_id=track_id, state="detected", confidence=1.0, bbox_xywh=(0, 0, 1, 1), keypoints=np.zeros((33, 3)))

    seen = [[1], [1, 2], [1, 2], [1, 3, 5], [1, 3, 4], [3, 4], [4, 5], [4, 5]]  # 2: two frames, 3: three, 4: four, 5: 3 apart
    confirmation = TrackConfirmation(3)
    out = []
    for index, ids in enumerate(seen):
        out += confirmation.push(FrameResult(index=index, timestamp_s=index / 30, people=[person(i) for i in ids]))
        assert len(out) == max(0, index - 1)  # two frames of latency
    out += confirmation.finish()
    assert [r.index for r in out] == list(range(len(seen)))
    # 5 is confirmed by its third sighting (frame 7): frames released before that lose it.
    assert [[p.track_id for p in r.people] for r in out] == [[1], [1], [1], [1, 3], [1, 3, 4], [3, 4], [4, 5], [4, 5]]


def _oks_of_matched(people, annotations, image_id):
    """Per frame, each annotated person's best OKS among ``people`` (0 where nobody matches)."""
    from daemon.evaluation import skeleton
    from daemon.evaluation.matching import oks_matrix
    from daemon.processing.backends.mediapipe.blazepose import BLAZEPOSE_33

    image = next(image for image in annotations.images if image.image_id == image_id)
    names = skeleton.shared_names(annotations.keypoint_names, BLAZEPOSE_33)
    truth = [(skeleton.select(p.keypoints, annotations.keypoint_names, names), p.area) for p in image.scored_people]
    return np.array([oks_matrix(truth, [skeleton.select(p.keypoints, BLAZEPOSE_33, names) for p in frame], skeleton.sigmas(names)).max(axis=1)
                     if frame else np.zeros(len(truth)) for frame in people])  # fmt: skip


def test_a_persons_mirrored_reading_lands_on_the_same_joints_with_left_and_right_swapped_back(tmp_path):
    """mirror_averaged reads the region flipped left to right; its left wrist is the person's right
    one and its x runs backwards. Taken back, the second reading of COCO's skier (image 785) lies
    a few pixels from the first; a swap gone wrong would put each wrist on the other."""
    from daemon.evaluation.eval_video import build_eval_videos
    from daemon.processing.backends.mediapipe.blazepose import MIRRORED

    coco = REPO / "tests" / "data" / "eval" / "coco"
    build_eval_videos(coco / "test_coco.json", coco, tmp_path)
    cfg = load_config(None, ["backend.mediapipe.mirror_average=false"])
    backend = MediapipeBackend(cfg.backend.mediapipe)
    backend.load(lambda _: None)
    with VideoSource(tmp_path / "000000000785.mp4", cfg.limits, cfg.inbox.extensions) as source:
        backend.start_video(source.meta, None)
        frames = list(source.frames())
        rgb = backend.preprocess(frames[-1]).image
        for frame in frames:
            backend.process(backend.preprocess(frame))
    (first,) = backend._tracked
    second = 2 * backend._landmarks.mirror_averaged(rgb, first).keypoints - first.keypoints  # the mirrored reading alone
    body = slice(11, 33)  # shoulders down: the face's points are a few pixels apart
    gap = np.linalg.norm(second[body, :2] - first.keypoints[body, :2], axis=1)
    swapped = np.linalg.norm(second[body, :2] - first.keypoints[list(MIRRORED)][body, :2], axis=1)
    assert np.median(gap) < 6.0, gap  # pixels, on a person ~400 px tall
    assert np.median(swapped) > 4 * np.median(gap), (gap, swapped)
    assert abs(second[:, 2].mean() - first.keypoints[:, 2].mean()) < 0.1  # visibilities follow their joints


def test_averaging_the_mirrored_reading_brings_poses_closer_to_the_truth_and_steadier(tmp_path):
    """The generated skier crossing (COCO's annotation moved with the pixels: exact truth), as
    posed eval-video builds it, through the backend with and without mirror_average: the mean
    OKS of each annotated person's pose is higher averaged (0.904 -> 0.910 here), and each
    track's keypoints jitter less from frame to frame (acceleration -20 % here)."""
    from daemon.evaluation.annotations import load_annotations
    from daemon.evaluation.eval_video import build_eval_videos
    from daemon.evaluation.motion_metrics import acceleration
    from daemon.processing.backends.mediapipe.blazepose import BLAZEPOSE_33

    clip = make_crossing_clip(tmp_path / "clip")
    build_eval_videos(clip, tmp_path / "clip", tmp_path / "videos")
    annotations = load_annotations(clip)
    frame_map = json.loads((tmp_path / "videos" / "crossing.mp4.frame-map.json").read_text())["frames"]
    figures = {}
    for average in (False, True):
        people, _ = run_backend(tmp_path / "videos" / "crossing.mp4", [f"backend.mediapipe.mirror_average={str(average).lower()}"])
        oks = [_oks_of_matched([frame], annotations, entry["image_id"])[0] for frame, entry in zip(people, frame_map)]
        oks = np.concatenate(oks)
        total, triples = acceleration(dict(enumerate(people)), BLAZEPOSE_33, BLAZEPOSE_33)
        figures[average] = (oks[oks >= 0.1].mean(), total / triples)
    print(f"skier crossing: OKS {figures[False][0]:.3f} -> {figures[True][0]:.3f}, acceleration {figures[False][1]:.2f} -> {figures[True][1]:.2f} px/frame^2")
    assert figures[True][0] > figures[False][0] + 0.002
    assert figures[True][1] < 0.9 * figures[False][1]


def test_a_cart_of_hurdles_the_network_reads_as_a_crouching_body_is_not_published():
    """On running-1080p.mp4 a cart of hurdles behind the runner is read as a person crouching in
    41 frames. Its heatmaps are flat (mean peak 0.38-0.54 at its keypoints; the runner's 0.71-0.92):
    by default only the runner is published, in every frame. The cart stays followed all the
    same (the same landmark passes as with the bound off), so nothing else changes."""
    gated, gated_summary = run_backend(MEDIA / "running-1080p.mp4")
    everyone, summary = run_backend(MEDIA / "running-1080p.mp4", ["backend.mediapipe.min_keypoint_certainty=0"])
    runner = everyone[0][0].track_id
    assert [[p.track_id for p in frame] for frame in gated] == [[runner]] * 180
    cart = Counter(p.track_id for frame in everyone for p in frame if p.track_id != runner)
    assert max(cart.values()) >= 30, cart
    assert gated_summary["landmark_runs"] == summary["landmark_runs"]
    assert gated_summary["readings_withheld"] >= max(cart.values()) and summary["readings_withheld"] == 0


def test_a_reading_the_network_is_unsure_of_is_withheld_and_the_person_keeps_their_id():
    """The street's pedestrians are seen from behind: some readings fall under the default bound.
    What is published is exactly what the bound-free run publishes for those people, same ids
    and same keypoints, minus the unsure readings."""
    gated, _ = run_backend(MEDIA / "street-5frames.mp4")
    everyone, _ = run_backend(MEDIA / "street-5frames.mp4", ["backend.mediapipe.min_keypoint_certainty=0"])
    assert sum(map(len, gated)) < sum(map(len, everyone))
    assert max(map(len, gated)) >= 2
    for published, unbounded in zip(gated, everyone):
        by_id = {p.track_id: p for p in unbounded}
        assert all(p.track_id in by_id and np.array_equal(p.keypoints, by_id[p.track_id].keypoints) for p in published)


def test_by_default_a_body_seen_in_three_frames_is_not_published_and_one_seen_in_four_is():
    """The default waits for a fourth sighting: with three, a 3-frame phantom on running-1080p.mp4
    and a hand reaching in at the edge of a panning clip (a second id for its owner) came out."""
    from daemon.processing.backends.mediapipe.confirmation import TrackConfirmation
    from daemon.records import FrameResult, Person

    def person(track_id):
        return Person(track_id=track_id, state="detected", confidence=1.0, bbox_xywh=(0, 0, 1, 1), keypoints=np.zeros((33, 3)))

    seen = [[1, 2], [1, 2], [1, 2], [1], [1], [1]]  # 1: a person, 2: three frames of something
    confirmation = TrackConfirmation(load_config(None, []).backend.mediapipe.confirm_frames)
    out = []
    for index, ids in enumerate(seen):
        out += confirmation.push(FrameResult(index=index, timestamp_s=index / 30, people=[person(i) for i in ids]))
    out += confirmation.finish()
    assert [[p.track_id for p in r.people] for r in out] == [[1]] * len(seen)


def test_max_people_may_not_exceed_the_frame_limit():
    with pytest.raises(ConfigError, match="backend.mediapipe.max_people"):
        load_config(None, ["backend.mediapipe.max_people=30", "limits.max_people_per_frame=20"])


@pytest.mark.parametrize("key", ["min_detection_confidence", "min_tracking_confidence", "min_keypoint_certainty"])
def test_a_score_bound_outside_zero_to_one_stops_the_daemon_at_start(key):
    with pytest.raises(ConfigError, match=f"backend.mediapipe.{key}': must be between 0 and 1"):
        load_config(None, [f"backend.mediapipe.{key}=1.5"])


@pytest.mark.slow
def test_two_runners_crossing_keep_their_ids_through_a_real_daemon(daemons, tmp_path):
    clip = make_crowd_clip(tmp_path / "crossing.mp4", people=2)
    daemon = daemons().wait_ready()
    drop(clip.path, daemon.inbox, "crossing.mp4")
    kind, _ = wait_outcome(daemon.outbox, "crossing.mp4", timeout=300)
    assert kind == "result"
    frames = list(open_result(daemon.outbox / "crossing.mp4.result.json").frames())
    assert len(frames) == clip.frames

    def runner_at(frame, person):
        """Which runner a person is: the one whose scripted centre is nearer."""
        x, _, w, _ = person["bbox"]
        centre = x + w / 2
        return min((0, 1), key=lambda r: abs(clip.centre_x(r, frame["frame_index"]) - centre))

    # Well before and well after the crossing both runners are seen, each under one id.
    apart = [f for f in frames if abs(f["frame_index"] - clip.crossing_frame()) > 15]
    ids_of = {0: set(), 1: set()}
    for frame in apart:
        for person in frame["people"]:
            ids_of[runner_at(frame, person)].add(person["track_id"])
    both_seen = sum(1 for f in apart if {runner_at(f, p) for p in f["people"]} == {0, 1})
    assert both_seen >= 0.9 * len(apart)
    assert len(ids_of[0]) == 1 and len(ids_of[1]) == 1, ids_of
    assert ids_of[0] != ids_of[1]
    # Through the crossing too, an id never lands on the other runner.
    owner = {next(iter(ids_of[0])): 0, next(iter(ids_of[1])): 1}
    for frame in frames:
        for person in frame["people"]:
            if person["track_id"] in owner and person["state"] == "detected":
                centre = person["bbox"][0] + person["bbox"][2] / 2
                other = 1 - owner[person["track_id"]]
                mine = abs(clip.centre_x(owner[person["track_id"]], frame["frame_index"]) - centre)
                theirs = abs(clip.centre_x(other, frame["frame_index"]) - centre)
                assert mine <= theirs + 40, (frame["frame_index"], person["track_id"])


def test_heatmap_refinement_matches_mediapipes_per_landmark_rule():
    """The vectorised refinement equals MediaPipe's rule written out landmark by landmark, and
    each landmark's heatmap peak is the best confidence in that same window."""
    from daemon.processing.backends.mediapipe.landmarks import _refine

    def one_by_one(points, heatmap):
        rows, cols, channels = heatmap.shape
        refined, peaks = points.copy(), np.zeros(len(points))
        for index in range(min(channels, len(points))):
            col, row = int(points[index, 0] * cols), int(points[index, 1] * rows)
            if not (0 <= col < cols and 0 <= row < rows):
                continue
            r0, r1, c0, c1 = max(0, row - 3), min(rows, row + 4), max(0, col - 3), min(cols, col + 4)
            confidence = 1 / (1 + np.exp(-heatmap[r0:r1, c0:c1, index].astype(np.float64)))
            peaks[index] = confidence.max()
            if confidence.max() >= 0.5:
                grid_rows, grid_cols = np.mgrid[r0:r1, c0:c1]
                total = confidence.sum()
                refined[index] = ((grid_cols * confidence).sum() / total / cols, (grid_rows * confidence).sum() / total / rows)
        return refined, peaks

    rng = np.random.default_rng(1)
    for _ in range(50):
        heatmap = rng.normal(0, 2, (64, 64, 39)).astype(np.float32)
        points = rng.uniform(-0.1, 1.1, (39, 2))  # some outside the crop: left alone, peak 0
        (refined, peaks), (expected, expected_peaks) = _refine(points, heatmap), one_by_one(points, heatmap)
        assert np.allclose(refined, expected, atol=1e-6) and np.allclose(peaks, expected_peaks, atol=1e-6)
        assert (peaks == 0).any() and (peaks > 0.5).any()
