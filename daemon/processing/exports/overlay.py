"""Drawing people onto a video frame: skeleton, track id and state, one style per state.

Styles are chosen so the three states read apart even in greyscale or for colour-blind viewers:

- detected: solid bones, filled joints, the track's own colour;
- predicted (the tracker's guess while the detector misses): dashed bones, ring joints, amber;
- interpolated (filled in by the motion stage): hollow bones (outline only), ring joints, sky blue.

A label ``#<track id> <state>`` sits above each person's box.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from daemon.records import Person

MIN_CONFIDENCE = 0.3  # keypoints below this are not drawn (MediaPipe visibility, PHALP scores)
TRACK_COLOURS_BGR = ((80, 220, 30), (40, 210, 240), (240, 140, 40), (180, 60, 230), (60, 90, 255))
PREDICTED_BGR = (0, 170, 255)
INTERPOLATED_BGR = (255, 200, 60)
OUTLINE_BGR = (20, 20, 20)
DASH_PX = 12  # dash length at 1080p, scaled with the frame


def style_scale(width: int, height: int) -> float:
    """Line widths and text grow with the frame: 1.0 at 1080 lines, never below 0.35."""
    return max(0.35, min(width, height) / 1080.0)


def colour_for(person: Person) -> tuple[int, int, int]:
    if person.state == "predicted":
        return PREDICTED_BGR
    if person.state == "interpolated":
        return INTERPOLATED_BGR
    return TRACK_COLOURS_BGR[person.track_id % len(TRACK_COLOURS_BGR)]


def draw_people(image: np.ndarray, people: list[Person], edges: list[tuple[int, int]], scale: float = 1.0) -> None:
    """Draw every person onto ``image`` (BGR, in place); ``scale``: the image's size over the input's."""
    style = style_scale(image.shape[1], image.shape[0])
    for person in people:
        _draw_person(image, person, edges, style, scale)


def _draw_person(image: np.ndarray, person: Person, edges: list[tuple[int, int]], scale: float, to_image: float) -> None:
    colour = colour_for(person)
    thickness = max(1, round(4 * scale))
    points = np.asarray(person.keypoints, dtype=np.float64).copy()
    points[:, :2] *= to_image
    shown = np.isfinite(points[:, :2]).all(axis=1) & (points[:, 2] >= MIN_CONFIDENCE)
    pixel = np.nan_to_num(points[:, :2]).round().astype(int)
    for a, b in edges:
        if shown[a] and shown[b]:
            _bone(image, tuple(pixel[a]), tuple(pixel[b]), colour, thickness, person.state)
    radius = max(2, round(5 * scale))
    for index in np.flatnonzero(shown):
        centre = tuple(pixel[index])
        if person.state == "detected":
            cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA)
        else:
            cv2.circle(image, centre, radius, colour, max(1, thickness // 2), cv2.LINE_AA)
    _label(image, person, colour, scale, to_image)


def _bone(image: np.ndarray, a: tuple[int, int], b: tuple[int, int], colour, thickness: int, state: str) -> None:
    if state == "predicted":
        _dashed_line(image, a, b, colour, thickness, max(4, round(DASH_PX * thickness / 4)))
    elif state == "interpolated":
        cv2.line(image, a, b, colour, thickness + 2, cv2.LINE_AA)
        cv2.line(image, a, b, OUTLINE_BGR, max(1, thickness - 2), cv2.LINE_AA)
    else:
        cv2.line(image, a, b, colour, thickness, cv2.LINE_AA)


def _dashed_line(image: np.ndarray, a, b, colour, thickness: int, dash: int) -> None:
    length = math.dist(a, b)
    steps = max(1, int(length // dash))
    for step in range(0, steps, 2):
        start = step / steps
        stop = min(1.0, (step + 1) / steps)
        p = (round(a[0] + (b[0] - a[0]) * start), round(a[1] + (b[1] - a[1]) * start))
        q = (round(a[0] + (b[0] - a[0]) * stop), round(a[1] + (b[1] - a[1]) * stop))
        cv2.line(image, p, q, colour, thickness, cv2.LINE_AA)


def _label(image: np.ndarray, person: Person, colour, scale: float, to_image: float) -> None:
    text = f"#{person.track_id} {person.state}"
    font_scale = max(0.4, 0.9 * scale)
    weight = max(1, round(2 * scale))
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, weight)
    x, y = (float(v) * to_image for v in person.bbox_xywh[:2])
    left = int(np.clip(x, 0, max(0, image.shape[1] - w - 4)))
    top = int(np.clip(y - h - baseline - 6, 0, max(0, image.shape[0] - h - baseline - 4)))
    cv2.rectangle(image, (left, top), (left + w + 4, top + h + baseline + 4), OUTLINE_BGR, -1)
    cv2.putText(image, text, (left + 2, top + h + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, weight, cv2.LINE_AA)
