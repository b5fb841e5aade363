"""Evaluation: ``posed eval`` scores a published result against human annotations.

Reads annotations (``annotations``: COCO keypoints, PoseTrack 18/21) and published results
(``predictions``, through ``publishing.reader``), ties video frames to annotated images
(``frame_map``, ``eval_video`` builds such videos), matches people by OKS (``matching``,
``skeleton`` holds the names and COCO sigmas), and computes keypoint metrics
(``keypoint_metrics``: coverage, OKS, PCK, COCO AP) and identity metrics
(``identity_metrics``: switches, fragmentations, IDF1, MOTA); ``runner`` ties them per item and
per batch, ``report`` prints them.

May import: the shared vocabulary, publishing and itself. It reads what consumers read, never the
pipeline, so a score says what a user of the outbox gets.
"""
