"""posed eval's figures on cases small enough to check by hand, through real result files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daemon.evaluation.matching import oks
from daemon.evaluation.runner import EvalItem, evaluate
from daemon.evaluation.skeleton import COCO_17, sigmas
from tests.eval_support import annotation_document, body, person, write_annotations, write_result

A = body(150, 100)
B = body(450, 120, scale=1.2)


def _score(tmp_path, truth: list, predicted: list, sequence: str | None = "clip") -> dict:
    annotations = write_annotations(tmp_path / "truth.json", annotation_document(truth, sequence))
    result = write_result(tmp_path / "out", predicted)
    return evaluate([EvalItem(result, annotations)])


def test_a_perfect_prediction_scores_full_marks(tmp_path):
    truth = [[(1, A), (2, B)] for _ in range(5)]
    report = _score(tmp_path, truth, [[person(1, A), person(2, B)] for _ in range(5)])
    item = report["items"][0]
    smoothed = item["smoothed"]
    assert smoothed["annotated_people"] == 10 and smoothed["matched_people"] == 10
    assert smoothed["coverage"] == 1.0
    assert smoothed["mean_oks"] == pytest.approx(1.0)
    assert smoothed["pck_0.2_torso"] == 1.0 and smoothed["median_error_px"] == pytest.approx(0.0, abs=0.05)
    assert smoothed["ap"] == pytest.approx(1.0) and smoothed["ap50"] == pytest.approx(1.0)
    identity = smoothed["identity"]
    assert identity["num_switches"] == 0 and identity["num_fragmentations"] == 0
    assert identity["idf1"] == pytest.approx(1.0) and identity["mota"] == pytest.approx(1.0)
    assert item["clip"] and item["keypoints"] == list(COCO_17)  # all 17 found among BlazePose's 33 names


def test_an_id_handed_to_a_new_track_is_exactly_one_switch(tmp_path):
    truth = [[(1, A)] for _ in range(6)]
    predicted = [[person(1 if index < 3 else 7, A)] for index in range(6)]
    identity = _score(tmp_path, truth, predicted)["items"][0]["smoothed"]["identity"]
    assert identity["num_switches"] == 1
    assert identity["idf1"] == pytest.approx(0.5)  # the best one-to-one pairing keeps 3 of 6 frames


def test_two_people_swapping_ids_is_one_switch_each(tmp_path):
    truth = [[(1, A), (2, B)] for _ in range(6)]
    predicted = [[person(1, A), person(2, B)] if index < 3 else [person(2, A), person(1, B)] for index in range(6)]
    smoothed = _score(tmp_path, truth, predicted)["items"][0]["smoothed"]
    assert smoothed["identity"]["num_switches"] == 2
    assert smoothed["coverage"] == 1.0 and smoothed["mean_oks"] == pytest.approx(1.0)  # placement is perfect


def test_one_shifted_keypoint_gives_the_oks_the_formula_says(tmp_path):
    shift = 10.0
    moved = A.copy()
    wrist = COCO_17.index("left_wrist")
    moved[wrist, 0] += shift
    report = _score(tmp_path, [[(1, A)]], [[person(1, moved)]])
    document = annotation_document([[(1, A)]])
    area = document["annotations"][0]["area"]
    similarity = math.exp(-(shift**2) / (2 * area * (2 * 0.062) ** 2))
    expected = (16 + similarity) / 17
    assert report["items"][0]["smoothed"]["mean_oks"] == pytest.approx(expected, abs=2e-4)  # result keypoints are 0.1 px


def test_oks_agrees_with_pycocotools(tmp_path):
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    truth = np.column_stack([A, np.full(17, 2.0)])
    truth[3, 2] = 0  # an unlabelled ear does not count
    guess = np.column_stack([A + rng.normal(0, 6, A.shape), np.ones(17)])
    area = 9000.0
    evaluation = COCOeval(iouType="keypoints")
    evaluation._gts = {(1, 1): [{"keypoints": truth.ravel().tolist(), "area": area, "bbox": [0, 0, 1, 1]}]}
    evaluation._dts = {(1, 1): [{"keypoints": guess.ravel().tolist(), "score": 1.0}]}
    evaluation.params.imgIds, evaluation.params.catIds = [1], [1]
    reference = evaluation.computeOks(1, 1)[0, 0]
    assert oks(truth, guess, area, sigmas(COCO_17)) == pytest.approx(reference, rel=1e-9)


def test_coverage_counts_only_matches_at_oks_0_1_or_more(tmp_path):
    far = body(600, 400, scale=0.3)  # nowhere near B: OKS ~ 0
    report = _score(tmp_path, [[(1, A), (2, B)]], [[person(1, A), person(5, far)]])
    smoothed = report["items"][0]["smoothed"]
    assert smoothed["annotated_people"] == 2 and smoothed["predicted_people"] == 2
    assert smoothed["matched_people"] == 1 and smoothed["coverage"] == 0.5


def test_raw_and_smoothed_are_scored_side_by_side(tmp_path):
    lagging = A + np.array([12.0, 0.0])  # the smoothed output lags; the model's own output is exact
    report = _score(tmp_path, [[(1, A)] for _ in range(3)], [[person(1, lagging, raw_points=A)] for _ in range(3)])
    item = report["items"][0]
    assert item["has_raw"]
    assert item["raw"]["mean_oks"] == pytest.approx(1.0)
    assert item["smoothed"]["mean_oks"] < 0.95
    assert report["aggregate"]["raw"]["mean_oks"] == pytest.approx(1.0)


def test_interpolated_people_are_not_in_the_raw_view(tmp_path):
    predicted = [[person(1, A)], [person(1, A, state="interpolated")], [person(1, A)]]
    item = _score(tmp_path, [[(1, A)] for _ in range(3)], predicted)["items"][0]
    assert item["smoothed"]["matched_people"] == 3
    assert item["raw"]["matched_people"] == 2


def test_stills_without_track_ids_get_no_identity_figures(tmp_path):
    document = annotation_document([[(1, A)], [(2, B)]], sequence=None)
    for annotation in document["annotations"]:
        del annotation["track_id"]  # plain COCO: every person is someone else
    annotations = write_annotations(tmp_path / "stills.json", document)
    report = evaluate([EvalItem(write_result(tmp_path / "out", [[person(1, A)], [person(1, B)]]), annotations)])
    item = report["items"][0]
    assert not item["clip"] and item["smoothed"]["identity"] is None and report["aggregate"]["smoothed"]["identity"] is None
    assert item["smoothed"]["coverage"] == 1.0


def test_acceleration_is_the_mean_second_difference_of_each_track(tmp_path):
    # track 1 moves at constant speed (0), track 2 jitters +3/-3 px on every keypoint (|+3 - 2(-3) + 3| = 12)
    jitter = [3.0, -3.0, 3.0, -3.0]
    predicted = [[person(1, A + [5.0 * t, 0]), person(2, B + [jitter[t], 0])] for t in range(4)]
    report = _score(tmp_path, [[(1, A), (2, B)] for _ in range(4)], predicted)
    # triples: track 1 at t=1,2 (0 each), track 2 at t=1,2 (12 each) -> (0 + 0 + 12 + 12) / 4
    assert report["items"][0]["smoothed"]["mean_acceleration_px"] == pytest.approx(6.0, abs=0.1)


def test_unmatched_people_inside_posetrack_ignore_regions_are_not_false_positives(tmp_path):
    bystander = body(520, 300, scale=0.4)  # someone in the crowd nobody labelled
    document = annotation_document([[(1, A)]])
    results = write_result(tmp_path / "out", [[person(1, A), person(9, bystander)]])
    plain = evaluate([EvalItem(results, write_annotations(tmp_path / "plain.json", document))])["items"][0]["smoothed"]
    document["images"][0].update({"ignore_regions_x": [[480, 640, 640, 480]], "ignore_regions_y": [[250, 250, 480, 480]]})
    ignoring = evaluate([EvalItem(results, write_annotations(tmp_path / "ignore.json", document))])["items"][0]["smoothed"]
    assert plain["predicted_people"] == 2 and plain["ap"] < 1.0
    assert ignoring["predicted_people"] == 1 and ignoring["ap"] == pytest.approx(1.0)
    assert ignoring["coverage"] == plain["coverage"] == 1.0


def test_errors_are_broken_down_by_keypoint(tmp_path):
    moved = A.copy()
    moved[COCO_17.index("right_ankle")] += (6.0, 8.0)  # 10 px off
    by_keypoint = _score(tmp_path, [[(1, A)]], [[person(1, moved)]])["items"][0]["smoothed"]["median_error_px_by_keypoint"]
    assert list(by_keypoint) == list(COCO_17)
    assert by_keypoint["right_ankle"] == pytest.approx(10.0, abs=0.1)
    assert all(value == pytest.approx(0.0, abs=0.1) for name, value in by_keypoint.items() if name != "right_ankle")


def test_a_frame_map_pointing_past_the_result_is_refused(tmp_path):
    from daemon.errors import EvaluationError

    annotations = write_annotations(tmp_path / "truth.json", annotation_document([[(1, A)] for _ in range(3)]))
    result = write_result(tmp_path / "out", [[person(1, A)] for _ in range(2)])  # one frame short
    with pytest.raises(EvaluationError, match=r"frames \[2\] are not in the result \(it holds frames 0..1"):
        evaluate([EvalItem(result, annotations)])


def test_oks_in_both_views_compares_the_same_people(tmp_path):
    """A filled frame that is poorer than the detections lowers the smoothed view's own mean,
    which the raw view (no filled frames) does not have; over the person-frames both views
    matched the two agree, as they should when smoothing changed nothing."""
    off = A + np.array([15.0, 0.0])  # the filled frame is 15 px off
    predicted = [[person(1, A)], [person(1, off, state="interpolated")], [person(1, A)]]
    item = _score(tmp_path, [[(1, A)] for _ in range(3)], predicted)["items"][0]
    assert item["smoothed"]["mean_oks"] < item["raw"]["mean_oks"] == pytest.approx(1.0)
    assert item["smoothed"]["mean_oks_both_views"] == pytest.approx(1.0) == item["raw"]["mean_oks_both_views"]


def test_a_result_longer_than_the_annotations_without_a_frame_map_is_flagged(tmp_path):
    """Labels on 3 images, a result of 6 frames (say, every other frame labelled): scoring frame i
    against image i pairs the wrong pictures, so the report says so, item by item and on screen."""
    from daemon.evaluation.report import render

    annotations = write_annotations(tmp_path / "truth.json", annotation_document([[(1, A)] for _ in range(3)]))
    result = write_result(tmp_path / "out", [[person(1, A)] for _ in range(6)])
    report = evaluate([EvalItem(result, annotations)])
    (warning,) = report["items"][0]["warnings"]
    assert "the result has 6 frames but truth.json has 3 images" in warning and "--frame-map" in warning
    assert render(report).splitlines()[1].startswith("WARNING clip.mp4.result.json: the result has 6 frames")
    exact = write_result(tmp_path / "exact", [[person(1, A)] for _ in range(3)])
    assert evaluate([EvalItem(exact, annotations)])["items"][0]["warnings"] == []
