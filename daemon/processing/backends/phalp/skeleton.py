"""Joint names of PHALP's 45-joint output and the COCO-17 subset derived from it.

PHALP's SMPL wrapper reorders the SMPL joints into OpenPose BODY_25 order, appends 19 joints
regressed from the vertices (``SMPL_to_J19.pkl``, the SPIN/ProHMR "J19" convention) and
``get_3d_parameters`` appends one all-zero joint: the SMPL origin, whose projection the tracker
uses as the person's location. The files carry no names, only the order; the names below follow
the conventions that order matches (reference §4.2).

The J19 joints get a ``j19_`` prefix: several share a body part with a BODY_25 joint (hips,
knees, neck) but sit elsewhere (regressed from the surface, LSP/MPII/H36M definitions), and
names must be unique for consumers that key points by name.
"""

from __future__ import annotations

BODY_25 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
    "right_heel",
)  # fmt: skip

J19 = (
    "j19_right_ankle", "j19_right_knee", "j19_right_hip", "j19_left_hip", "j19_left_knee",
    "j19_left_ankle", "j19_right_wrist", "j19_right_elbow", "j19_right_shoulder",
    "j19_left_shoulder", "j19_left_elbow", "j19_left_wrist", "j19_neck", "j19_head_top",
    "j19_pelvis", "j19_thorax", "j19_spine", "j19_jaw", "j19_head",
)  # fmt: skip

SMPL_ORIGIN = "smpl_origin"
PHALP_45 = BODY_25 + J19 + (SMPL_ORIGIN,)
SMPL_ORIGIN_INDEX = PHALP_45.index(SMPL_ORIGIN)  # 44
SMPL_JOINT_COUNT = SMPL_ORIGIN_INDEX  # joints the SMPL layer returns; the origin is appended

COCO_17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# COCO is a subset of OpenPose BODY_25 (OpenPose's body model extends COCO's), so every COCO
# joint maps to the BODY_25 joint of the same name. The SMPL hip joints sit a little inside
# the COCO hips; consumers comparing with COCO detectors should expect that offset.
COCO_17_FROM_PHALP_45 = tuple(PHALP_45.index(name) for name in COCO_17)

# SMPL's 24 kinematic joints, the order of global_orient (1) + body_pose (23).
SMPL_24 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL_BODY_POSE_JOINTS = SMPL_24[1:]

KEYPOINT_FORMAT = "phalp-45 (openpose-body25 + j19 + smpl_origin)"
