"""``posed eval``'s printed table: the aggregate, raw vs smoothed side by side, then one line per item."""

from __future__ import annotations

from daemon.evaluation.matching import MATCH_OKS

ROWS = (
    ("annotated person-frames", "annotated_people", "count"),
    ("predicted person-frames", "predicted_people", "count"),
    ("coverage (OKS >= 0.1)", "coverage", "percent"),
    ("mean OKS, matched people", "mean_oks", "ratio"),
    ("mean OKS, matched in both", "mean_oks_both_views", "ratio"),
    ("PCKh@0.5", "pckh_0.5", "percent"),
    ("PCK@0.2 torso", "pck_0.2_torso", "percent"),
    ("median error px", "median_error_px", "pixels"),
    ("COCO AP", "ap", "ratio"),
    ("COCO AP50", "ap50", "ratio"),
    ("COCO AR", "ar", "ratio"),
    ("mean acceleration px/frame²", "mean_acceleration_px", "pixels2"),
)
IDENTITY_ROWS = (
    ("ID switches", "num_switches", "count"),
    ("fragmentations", "num_fragmentations", "count"),
    ("IDF1", "idf1", "percent"),
    ("MOTA", "mota", "percent"),
)


def render(report: dict) -> str:
    aggregate = report["aggregate"]
    items = report["items"]
    lines = [f"posed eval: {len(items)} item(s); a person is matched at OKS >= {MATCH_OKS} (Hungarian per frame); every rule: --json"]
    lines += [f"WARNING {item['name']}: {warning}" for item in items for warning in item["warnings"]]
    lines.append("")
    lines.append(f"{'':30}{'smoothed':>12}{'raw':>12}")
    for label, key, kind in ROWS:
        lines.append(f"{label:30}{_cell(aggregate['smoothed'].get(key), kind):>12}{_cell(aggregate['raw'].get(key), kind):>12}")
    identity = {view: aggregate[view].get("identity") or {} for view in ("smoothed", "raw")}
    if identity["smoothed"]:
        lines.append(f"identity on {identity['smoothed'].get('clips', 0)} clip(s):")
        for label, key, kind in IDENTITY_ROWS:
            lines.append(f"  {label:28}{_cell(identity['smoothed'].get(key), kind):>12}{_cell(identity['raw'].get(key), kind):>12}")
    if not any(item["has_raw"] for item in items):
        lines.append("(no raw keypoints in these results: raw = smoothed; process with motion.include_raw=true to compare)")
    lines += ["", f"{'item':36}{'people':>8}{'coverage':>10}{'OKS':>7}{'AP':>7}{'IDF1':>7}{'switch':>8}"]
    for item in items:
        view = item["smoothed"]
        ident = view.get("identity") or {}
        lines.append(
            f"{item['name'][:35]:36}{view['annotated_people']:>8}{_cell(view['coverage'], 'percent'):>10}"
            f"{_cell(view['mean_oks'], 'ratio'):>7}{_cell(view['ap'], 'ratio'):>7}"
            f"{_cell(ident.get('idf1'), 'percent'):>7}{_cell(ident.get('num_switches'), 'count'):>8}"
        )
    return "\n".join(lines)


def _cell(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "count":
        return str(int(value))
    if kind == "percent":
        return f"{100 * value:.1f} %"
    if kind == "pixels":
        return f"{value:.1f}"
    if kind == "pixels2":
        return f"{value:.2f}"
    return f"{value:.3f}"
