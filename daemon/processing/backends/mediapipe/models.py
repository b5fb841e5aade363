"""The two BlazePose networks that ship inside the mediapipe 0.10.21 wheel, run by LiteRT.

MediaPipe's own Python API runs them only as one fixed single-person graph. To find several
people we run the networks ourselves with LiteRT (``ai-edge-litert``, Google's TFLite runtime,
Apache-2.0): the person detector on tiles of the frame, the landmark network once per person.
Nothing is downloaded: both files are read from the installed mediapipe package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daemon.errors import BackendUnavailable

DETECTOR_FILE = "modules/pose_detection/pose_detection.tflite"
LANDMARK_FILE = "modules/pose_landmark/pose_landmark_full.tflite"  # model_complexity=1, the one bundled


def bundled_model(relative: str) -> Path:
    """The path of a model file inside the installed mediapipe wheel."""
    try:
        import mediapipe
    except ImportError as exc:
        raise BackendUnavailable(f"cannot import mediapipe ({exc}); run ./scripts/run.sh to rebuild .venv") from exc
    path = Path(mediapipe.__file__).parent / relative
    if not path.is_file():
        raise BackendUnavailable(
            f"{path} is missing: mediapipe {mediapipe.__version__} does not bundle its pose models; "
            "posed needs mediapipe==0.10.21 (run ./scripts/run.sh to rebuild .venv)"
        )
    return path


class Network:
    """One TFLite network with a single float input, called with a batch of one."""

    def __init__(self, path: Path, *, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendUnavailable(f"cannot import ai_edge_litert ({exc}); run ./scripts/run.sh to rebuild .venv") from exc
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        (self._input,) = self._interpreter.get_input_details()
        self._outputs = sorted(self._interpreter.get_output_details(), key=_output_order)
        self.input_size = int(self._input["shape"][1])

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """``image``: (size, size, 3) float32. Returns the outputs in the order of their names."""
        self._interpreter.set_tensor(self._input["index"], image[np.newaxis])
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(output["index"])[0] for output in self._outputs]


def _output_order(detail: dict) -> int:
    """TFLite names the outputs Identity, Identity_1, ...: that numbering is the model's order."""
    name = detail["name"]
    return int(name.rsplit("_", 1)[1]) if "_" in name else 0
