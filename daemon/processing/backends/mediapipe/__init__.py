"""The embedded CPU backend: every person in the frame, from the BlazePose networks that ship
inside the mediapipe wheel, run with LiteRT and tracked with norfair."""

from daemon.processing.backends.mediapipe.backend import MediapipeBackend

__all__ = ["MediapipeBackend"]
