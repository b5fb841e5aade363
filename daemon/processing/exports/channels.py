"""Keyframe data kept on disk while a video is processed, so memory does not grow with its length.

A ``RecordFile`` is an append-only file of fixed-width float32 rows (one per frame). At the end it
is mapped read-only and handed out column by column, a bounded number of rows at a time: the
glTF needs each channel contiguous, the stream arrives frame by frame.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROWS_PER_CHUNK = 1024  # rows read per step when a column is copied out


class RecordFile:
    """Rows of ``width`` numbers (float32 unless told), appended one frame at a time, in a private temp file."""

    def __init__(self, folder: Path, width: int, prefix: str, dtype: str = "<f4") -> None:
        self.width = width
        self.dtype = dtype
        self.rows = 0
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".f32", dir=folder)
        self.path = Path(name)
        self._handle = os.fdopen(fd, "wb")

    def append(self, row: np.ndarray) -> None:
        values = np.asarray(row, dtype=self.dtype).reshape(-1)
        if values.size != self.width:
            raise ValueError(f"a row has {values.size} values, this file holds {self.width}")
        self._handle.write(values.tobytes())
        self.rows += 1

    def finish(self) -> None:
        self._handle.close()

    def column_bytes(self, start: int, stop: int) -> Iterator[bytes]:
        """Columns ``start:stop`` of every row, row-major, as little-endian bytes of the file's type."""
        if self.rows == 0:
            return
        table = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.rows, self.width))
        try:
            for first in range(0, self.rows, ROWS_PER_CHUNK):
                yield np.ascontiguousarray(table[first : first + ROWS_PER_CHUNK, start:stop]).tobytes()
        finally:
            del table

    def column_values(self, column: int) -> Iterator[np.ndarray]:
        """One column in chunks of at most ``ROWS_PER_CHUNK`` values."""
        for chunk in self.column_bytes(column, column + 1):
            yield np.frombuffer(chunk, dtype=self.dtype)

    def column_range(self, start: int, stop: int) -> tuple[list[float], list[float]]:
        """Per-component minimum and maximum of columns ``start:stop`` (glTF wants them for inputs)."""
        low = np.full(stop - start, np.inf)
        high = np.full(stop - start, -np.inf)
        table = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.rows, self.width))
        for first in range(0, self.rows, ROWS_PER_CHUNK):
            block = table[first : first + ROWS_PER_CHUNK, start:stop]
            low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
        del table
        return [float(v) for v in low], [float(v) for v in high]

    def remove(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
