"""Streaming exporters: files people open directly (an animated glTF, an overlay video).

Each exporter is fed the job's ``FrameResult``s in frame order while the video is processed and
leaves one finished temporary file behind; publishing moves it next to the result. Interface in
``base``; the glTF mapping in ``gltf``; the overlay preview in ``preview``.
"""

from daemon.processing.exports.base import ExportedFile, ExportError, Exporter

__all__ = ["ExportError", "ExportedFile", "Exporter"]
