"""Which keypoints are joined by a bone, by name, for every backend's keypoint set.

Edges are written as name pairs and kept only when both names exist in the backend's list, so
one table serves MediaPipe's BlazePose-33 and PHALP's OpenPose BODY_25 (+J19) names alike.
"""

from __future__ import annotations

# BlazePose (mp.solutions.pose.POSE_CONNECTIONS, by name) and OpenPose BODY_25 limbs. Names the
# two share (shoulders, elbows, hips...) appear once.
_EDGES_BY_NAME: tuple[tuple[str, str], ...] = (
    # face
    ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"),
    ("left_eye_outer", "left_ear"), ("nose", "right_eye_inner"), ("right_eye_inner", "right_eye"),
    ("right_eye", "right_eye_outer"), ("right_eye_outer", "right_ear"), ("mouth_left", "mouth_right"),
    # torso and arms
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    # hands (BlazePose)
    ("left_wrist", "left_pinky"), ("left_wrist", "left_index"), ("left_pinky", "left_index"),
    ("left_wrist", "left_thumb"), ("right_wrist", "right_pinky"), ("right_wrist", "right_index"),
    ("right_pinky", "right_index"), ("right_wrist", "right_thumb"),
    # legs
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"), ("left_ankle", "left_heel"), ("right_ankle", "right_heel"),
    ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"),
    ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"),
    # OpenPose BODY_25: neck, mid-hip, eyes, ears and toes
    ("nose", "neck"), ("neck", "mid_hip"), ("nose", "left_eye"), ("nose", "right_eye"),
    ("left_eye", "left_ear"), ("right_eye", "right_ear"), ("left_ankle", "left_big_toe"),
    ("left_big_toe", "left_small_toe"), ("right_ankle", "right_big_toe"),
    ("right_big_toe", "right_small_toe"),
)  # fmt: skip


def skeleton_edges(names: tuple[str, ...] | list[str]) -> list[tuple[int, int]]:
    """Index pairs into ``names`` for every known bone whose two ends are both present."""
    index = {name: i for i, name in enumerate(names)}
    edges = []
    for a, b in _EDGES_BY_NAME:
        if a in index and b in index and (index[a], index[b]) not in edges:
            edges.append((index[a], index[b]))
    return edges
