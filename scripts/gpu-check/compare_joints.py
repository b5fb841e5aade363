"""``compare_joints.py A.result.json B.result.json``: how far B's 3D joints are from A's, in mm.

People are paired by track id within each frame; only frames and tracks present in both count.
Prints one JSON object: frames and joints compared, mean / 95th percentile / max distance (mm),
and tracks found in only one of the two results (precision can change the tracking itself).
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from daemon.publishing.contract import iter_verified_frames  # noqa: E402


def joints_by_track(path: Path) -> dict[tuple[int, object], np.ndarray]:
    manifest = json.loads(path.read_text())
    entry = manifest["files"]["frames"]
    found = {}
    for frame in iter_verified_frames(path.with_name(entry["name"]), entry):
        for person in frame["people"]:
            if person.get("joints_3d") is not None:
                found[(frame["frame_index"], person.get("track_id"))] = np.asarray(person["joints_3d"], dtype=np.float64)
    return found


def main() -> int:
    first, second = joints_by_track(Path(sys.argv[1])), joints_by_track(Path(sys.argv[2]))
    shared = sorted(set(first) & set(second), key=str)
    distances = np.concatenate([np.linalg.norm(first[key] - second[key], axis=-1) for key in shared]) * 1000 if shared else np.zeros(0)
    print(json.dumps({
        "people_compared": len(shared),
        "frames_compared": len({key[0] for key in shared}),
        "joints_compared": int(distances.size),
        "mean_mm": float(distances.mean()) if distances.size else None,
        "p95_mm": float(np.percentile(distances, 95)) if distances.size else None,
        "max_mm": float(distances.max()) if distances.size else None,
        "only_in_first": len(set(first) - set(second)),
        "only_in_second": len(set(second) - set(first)),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
