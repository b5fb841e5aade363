"""posed eval's inputs: the public annotation files, frame maps, eval-video's videos, hostile files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.cli import main
from daemon.errors import EvaluationError
from daemon.evaluation.annotations import load_annotations
from daemon.evaluation.eval_video import build_eval_videos
from daemon.evaluation.frame_map import default_frame_map, load_frame_map
from daemon.evaluation.skeleton import COCO_17, shared_names
from daemon.processing.backends.mediapipe.blazepose import BLAZEPOSE_33
from daemon.processing.backends.phalp.skeleton import PHALP_45

DATA = Path(__file__).resolve().parent / "data" / "eval"


def test_coco_keypoints_parse_with_crowd_and_empty_people_ignored():
    coco = load_annotations(DATA / "coco" / "test_coco.json")
    assert coco.keypoint_names == COCO_17 and not coco.has_identities
    assert [len(image.scored_people) for image in coco.images] == [1, 2, 4, 5]  # sorted by file name
    assert sum(len(image.people) for image in coco.images) == 14  # two without a labelled keypoint


def test_posetrack18_parses_with_identities_and_head_boxes():
    posetrack = load_annotations(DATA / "posetrack18" / "test_posetrack18_val.json")
    assert posetrack.has_identities
    assert sorted(len(image.scored_people) for image in posetrack.images) == [1, 2, 11]
    assert all(person.head_box is not None for image in posetrack.images for person in image.people)
    assert set(posetrack.sequences()) == {"003418", "009473", "012834"}
    # PoseTrack has head_bottom/head_top instead of eyes; its ears are placeholders (never labelled)
    assert shared_names(posetrack.keypoint_names, BLAZEPOSE_33) == tuple(n for n in COCO_17 if not n.endswith("_eye"))


@pytest.mark.parametrize("folder, people, shared", [("crowdpose", 4, 12), ("ochuman", 5, 17), ("aic", 9, 12), ("jhmdb", 3, 12), ("humanart", 4, 17)])
def test_other_public_samples_parse(folder, people, shared):
    (path,) = (DATA / folder).glob("*.json")
    annotations = load_annotations(path)
    assert sum(len(image.scored_people) for image in annotations.images) == people  # CrowdPose has one empty person
    assert len(shared_names(annotations.keypoint_names, BLAZEPOSE_33)) == shared  # CrowdPose: no face, head/neck not COCO


def test_keypoint_names_are_read_in_cocos_spelling_and_human_art_in_full():
    aic = load_annotations(DATA / "aic" / "test_aic.json")
    assert aic.keypoint_names[:3] == ("right_shoulder", "right_elbow", "right_wrist")  # "Right Shoulder", ...
    humanart = load_annotations(DATA / "humanart" / "test_humanart.json")
    assert len(humanart.keypoint_names) == 21  # COCO's 17 in "keypoints", all 21 in "keypoints_21"
    assert all(person.keypoints.shape == (21, 3) for image in humanart.images for person in image.people)


def test_stills_in_folders_get_a_video_each_named_after_their_path(tmp_path):
    """JHMDB's stills are all 00001.png, one folder per clip; Human-Art's file names start with
    the dataset's own root (HumanArt/images/...), which is not where a user keeps them."""
    jhmdb = build_eval_videos(DATA / "jhmdb" / "test_jhmdb_sub1.json", DATA / "jhmdb", tmp_path / "jhmdb", still_frames=2)
    assert len({video.name for video in jhmdb}) == 3
    assert all(video.name.endswith("_00001.mp4") for video in jhmdb)
    humanart = build_eval_videos(DATA / "humanart" / "test_humanart.json", DATA / "humanart", tmp_path / "humanart", still_frames=2)
    assert len(humanart) == 3 and all(video.stat().st_size > 0 for video in humanart)


def test_keypoints_are_mapped_by_name_for_every_backend():
    assert shared_names(COCO_17, BLAZEPOSE_33) == COCO_17
    assert shared_names(COCO_17, PHALP_45) == COCO_17
    with pytest.raises(EvaluationError, match="share no COCO keypoint"):
        shared_names(COCO_17, tuple(f"landmark_{i}" for i in range(33)))


@pytest.mark.parametrize(
    "document, message",
    [
        ("not json", "not JSON"),
        ({"images": []}, "not a COCO/PoseTrack document"),
        ({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}, "no category with keypoint names"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"id": 1, "image_id": 2, "category_id": 1}],
          "categories": [{"id": 1, "keypoints": ["nose"]}]}, "unknown image"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2]}],
          "categories": [{"id": 1, "keypoints": ["nose"]}]}, "keypoints must be 3 numbers"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2], "bbox": [0, 0, -5, 1]}],
          "categories": [{"id": 1, "keypoints": ["nose"]}]}, "a box must be"),
    ],
)  # fmt: skip
def test_malformed_annotations_are_refused_with_the_reason(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    with pytest.raises(EvaluationError, match=message):
        load_annotations(path)


def test_eval_video_makes_one_short_video_per_still_with_its_frame_map(tmp_path):
    videos = build_eval_videos(DATA / "coco" / "test_coco.json", DATA / "coco", tmp_path, still_frames=4)
    assert [video.name for video in videos] == ["000000000785.mp4", "000000040083.mp4", "000000196141.mp4", "000000197388.mp4"]
    capture = cv2.VideoCapture(str(videos[1]))  # 500x333: padded to an even height for yuv420p
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 4 and frames[0].shape == (334, 500, 3)
    original = cv2.imread(str(DATA / "coco" / "000000040083.jpg"))
    assert abs(frames[-1][:333].astype(int) - original.astype(int)).mean() < 3  # CRF 12: the model sees what annotators saw
    assert load_frame_map(videos[1].with_name(videos[1].name + ".frame-map.json")) == {i: 40083 for i in range(4)}
    batch = json.loads((tmp_path / "eval-batch.json").read_text())
    assert [entry["result"] for entry in batch] == [f"{video.name}.result.json" for video in videos]
    assert (tmp_path / batch[0]["annotations"]).resolve() == (DATA / "coco" / "test_coco.json").resolve()


def test_eval_video_refuses_an_image_path_outside_the_folder(tmp_path):
    document = json.loads((DATA / "coco" / "test_coco.json").read_text())
    document["images"] = document["images"][:1]
    document["images"][0]["file_name"] = "../coco/000000000785.jpg"
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] == document["images"][0]["id"]]
    path = tmp_path / "escape.json"
    path.write_text(json.dumps(document))
    (tmp_path / "images").mkdir()
    with pytest.raises(EvaluationError, match="outside"):
        build_eval_videos(path, tmp_path / "images", tmp_path / "out")


def test_the_default_frame_map_skips_unlabelled_posetrack_frames(tmp_path):
    document = {"images": [{"id": 10 + i, "file_name": f"{i:06d}.jpg", "vid_id": "7", "is_labeled": i % 2 == 0} for i in range(4)],
                "annotations": [], "categories": [{"id": 1, "keypoints": list(COCO_17)}]}  # fmt: skip
    path = tmp_path / "sparse.json"
    path.write_text(json.dumps(document))
    assert default_frame_map(load_annotations(path)) == {0: 10, 2: 12}


def test_frame_maps_are_checked(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"format": "posed.eval-frame-map", "version": 1, "frames": [{"frame_index": 0, "image_id": 1}, {"frame_index": 0, "image_id": 2}]}))
    with pytest.raises(EvaluationError, match="unique frame_index"):
        load_frame_map(path)


def test_the_cli_reports_usage_and_unreadable_inputs(tmp_path, capsys):
    assert main(["eval"]) == 2
    assert "RESULT ANNOTATIONS, or --batch" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "none.result.json"), str(DATA / "coco" / "test_coco.json")]) == 1
    assert "not a readable posed result" in capsys.readouterr().err


def test_an_identity_in_attributes_track_id_is_read(tmp_path):
    document = {"images": [{"id": i, "file_name": f"frame_{i:06d}.PNG"} for i in range(2)],
                "annotations": [{"id": 5 + i, "image_id": i, "category_id": 1, "keypoints": [10, 10, 2],
                                 "attributes": {"track_id": 3, "keyframe": True}} for i in range(2)],
                "categories": [{"id": 1, "keypoints": ["nose"]}]}  # fmt: skip
    path = tmp_path / "cvat.json"
    path.write_text(json.dumps(document))
    annotations = load_annotations(path)
    assert annotations.has_identities and [image.people[0].identity for image in annotations.images] == [3, 3]


def test_eval_video_makes_one_clip_of_a_tracked_export_without_vid_id(tmp_path):
    images = tmp_path / "export" / "images"
    images.mkdir(parents=True)
    document = {"images": [], "annotations": [], "categories": [{"id": 1, "keypoints": ["nose"]}]}
    for i in range(3):
        cv2.imwrite(str(images / f"frame_{i:06d}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
        document["images"].append({"id": 7 + i, "file_name": f"frame_{i:06d}.png", "width": 64, "height": 48})
        document["annotations"].append({"id": i + 1, "image_id": 7 + i, "category_id": 1, "keypoints": [30, 20, 2], "attributes": {"track_id": 1}})
    path = tmp_path / "export" / "annotations.json"
    path.write_text(json.dumps(document))
    (video,) = build_eval_videos(path, images, tmp_path / "out")
    assert video.name == "annotations.mp4"
    assert load_frame_map(video.with_name(video.name + ".frame-map.json")) == {0: 7, 1: 8, 2: 9}


def test_mpii_list_converts_to_coco_keypoints_posed_eval_reads(tmp_path):
    from scripts.eval_public import mpii_as_coco

    mpii = load_annotations(mpii_as_coco(DATA / "mpii" / "test_mpii.json", tmp_path / "mpii.json"))
    assert sum(len(image.scored_people) for image in mpii.images) == 5
    assert len(shared_names(mpii.keypoint_names, BLAZEPOSE_33)) == 12  # no face; head top and neck are not COCO's
    source = json.loads((DATA / "mpii" / "test_mpii.json").read_text())
    first = next(image for image in mpii.images if image.file_name == source[0]["image"]).people[0]
    ankle = mpii.keypoint_names.index("right_ankle")
    assert tuple(first.keypoints[ankle]) == (*source[0]["joints"][0], 2.0)  # MPII's joint 0 is the right ankle
