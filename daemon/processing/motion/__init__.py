"""The motion stage (issue 13): smoothed tracks, short misses filled by interpolation, raw kept.

``MotionStage`` is the entry point; the other modules are its parts (filter, rotations, gap
filling, quality figures, settings).
"""

from daemon.processing.motion.stage import MotionStage

__all__ = ["MotionStage"]
