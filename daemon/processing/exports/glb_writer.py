"""Assembling a GLB file whose binary chunk is streamed from pieces, never held whole in memory.

pygltflib models the glTF document (buffers, views, accessors, nodes, animations) and writes its
JSON; the BIN chunk is the concatenation of the pieces the mapping registered, copied from their
sources at the end. The GLB framing itself is three fixed headers (glTF 2.0 spec, "GLB File
Format Specification"); pygltflib's own GLB writer needs the whole blob as one ``bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pygltflib

GLB_MAGIC = 0x46546C67  # "glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
ALIGNMENT = 4


@dataclass
class _Piece:
    length: int
    source: Callable[[], Iterable[bytes]]


class StreamedGlb:
    """A glTF document plus the ordered byte pieces of its single buffer."""

    def __init__(self) -> None:
        self.gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator="posed"))
        self._pieces: list[_Piece] = []
        self._length = 0

    def add_view(self, length: int, source: Callable[[], Iterable[bytes]], target: int | None = None) -> int:
        """Register ``length`` bytes (produced later by ``source``) as a new buffer view; its index."""
        view = pygltflib.BufferView(buffer=0, byteOffset=self._length, byteLength=length, target=target)
        self.gltf.bufferViews.append(view)
        padded = -(-length // ALIGNMENT) * ALIGNMENT
        self._pieces.append(_Piece(length, source))
        if padded != length:
            self._pieces.append(_Piece(padded - length, lambda n=padded - length: [b"\0" * n]))
        self._length += padded
        return len(self.gltf.bufferViews) - 1

    def add_bytes(self, data: bytes, target: int | None = None) -> int:
        return self.add_view(len(data), lambda: [data], target)

    def add_accessor(self, accessor: pygltflib.Accessor) -> int:
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def add_node(self, node: pygltflib.Node) -> int:
        self.gltf.nodes.append(node)
        return len(self.gltf.nodes) - 1

    def write(self, path: Path) -> None:
        """Write the GLB: header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
        self.gltf.buffers = [pygltflib.Buffer(byteLength=self._length)]
        document = self.gltf.gltf_to_json(separators=(",", ":"), indent=None).encode("utf-8")
        document += b" " * (-len(document) % ALIGNMENT)
        total = 12 + 8 + len(document) + 8 + self._length
        with open(path, "wb") as out:
            out.write(struct.pack("<III", GLB_MAGIC, GLB_VERSION, total))
            out.write(struct.pack("<II", len(document), CHUNK_JSON))
            out.write(document)
            out.write(struct.pack("<II", self._length, CHUNK_BIN))
            for piece in self._pieces:
                written = sum(out.write(block) for block in piece.source())
                if written != piece.length:
                    raise ValueError(f"a buffer piece produced {written} bytes, {piece.length} were planned")
