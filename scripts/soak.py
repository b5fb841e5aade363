"""Soak test (issue 5): every input accounted for exactly once, under load and chaos.

    .venv/bin/python scripts/soak.py --videos 300          # the full soak (about 10 minutes)
    .venv/bin/python scripts/soak.py --videos 24           # the CI size, run by tests/test_soak_ci.py

Two producer processes drop short videos into one inbox, in bursts and as a steady drip: most
by writing ``NAME.part`` and renaming it, some written slowly in place (some Explorer-style,
full size first), some broken (cut short, empty, text renamed .mp4). Names containing the fault
backend's trigger (``crash``) make the worker crash with SIGSEGV on every attempt. Two daemons
share the inbox and the outbox; daemon A's worker is SIGKILLed at random moments; daemon B is
killed with ``kill -9`` mid-run and restarted. A consumer thread parses every outcome file it
sees while they are being published.

At the end: every input has exactly one outcome of the expected kind, none is duplicated, no
partial file was read, no lock is left behind, every input sits in done/ or failed/, and each
daemon's RSS stayed within the bound. A good video whose every attempt was killed by the soak's
own chaos (SIGKILLs of its worker, ``kill -9`` of its daemon) rightly ends ``E_WORKER_CRASH``:
the tally counts it as a *designed* outcome, not a defect, when its report names SIGKILL and
every retry the daemons logged for it was a SIGKILL too. ``--chaos-kills-per-video N`` keeps
the chaos from killing any one video more than N times and never on its last attempt (the CI
soak uses 1, so chaos cannot exhaust a video's attempts). Prints a tally (and writes it as JSON with ``--json``);
exit status 0 only when every check holds. The fault backend stands in for the model: its
``slow_ms_per_frame`` applies to triggered (crashing) videos only, so other videos are quick.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing posed

import psutil  # noqa: E402

from daemon.publishing.contract import validate_document  # noqa: E402
from tests.daemon_harness import SHORT_CLIP, DaemonProcess, OutboxReader, read_outcome  # noqa: E402

KINDS = {  # kind: (weight, expected outcome: "result" or an error code)
    "good": (0.72, "result"),
    "crash": (0.08, "E_WORKER_CRASH"),
    "cut": (0.08, "E_TRUNCATED"),
    "empty": (0.06, "E_EMPTY_FILE"),
    "text": (0.06, "E_NOT_A_VIDEO"),
}
DELIVERY = {"rename": 0.6, "slow": 0.25, "preallocated": 0.15}
NAME_FLAVOURS = ["", " läufer", " (1)", " $(x)", "-Ünïcödé", " ;x"]
MAX_ATTEMPTS = 3


def daemon_overrides(slow_ms: float, status_interval_s: float = 0.2) -> list[str]:
    return [
        "backend.name=fault",
        "backend.fault.trigger=crash",
        "backend.fault.crash_at_frame=10",
        f"backend.fault.slow_ms_per_frame={slow_ms}",
        f"worker.max_attempts={MAX_ATTEMPTS}",
        "inbox.settle_s=1.0",  # slow writers pause up to 0.12 s between chunks
        f"daemon.status_interval_s={status_interval_s}",  # short: liveness is judged in status intervals
        "outbox.publish_retry_s=2",
    ]


# -- the plan and the producers ---------------------------------------------------------------


def make_plan(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    kinds, weights = zip(*((kind, weight) for kind, (weight, _) in KINDS.items()))
    plan = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        producer = index % 2
        flavour = rng.choice(NAME_FLAVOURS) if rng.random() < 0.3 else ""
        delivery = "rename" if kind == "empty" else rng.choices(list(DELIVERY), list(DELIVERY.values()))[0]
        name = f"p{producer}-{index:04d}-{kind}{flavour}.mp4"
        plan.append({"name": name, "kind": kind, "delivery": delivery, "producer": producer, "expect": KINDS[kind][1]})
    return plan


def content_for(kind: str) -> bytes:
    clip = SHORT_CLIP.read_bytes()
    if kind == "cut":
        return clip[: len(clip) // 2]  # the index (moov) sits at the end of this clip: gone
    if kind == "empty":
        return b""
    if kind == "text":
        return b"not a video, just a text file renamed to .mp4\n" * 40
    return clip


def deliver(inbox: Path, item: dict[str, Any], rng: random.Random) -> None:
    data, final = content_for(item["kind"]), inbox / item["name"]
    if item["delivery"] == "rename":
        part = inbox / f".{item['name']}.part"
        part.write_bytes(data)
        os.rename(part, final)
        return
    chunks = rng.randint(4, 6)
    size = len(data) // chunks + 1
    with open(final, "wb") as handle:
        if item["delivery"] == "preallocated":
            handle.truncate(len(data))  # Windows Explorer sets the final size first
        for offset in range(0, len(data), size):
            handle.seek(offset)
            handle.write(data[offset : offset + size])
            handle.flush()
            os.fsync(handle.fileno())
            time.sleep(rng.uniform(0.04, 0.12))


def run_producer(inbox: Path, plan_file: Path, producer: int, seed: int, pace: float) -> int:
    """One producer process: its share of the plan, in bursts and as a drip."""
    rng = random.Random(seed * 7919 + producer)
    items = [item for item in json.loads(plan_file.read_text()) if item["producer"] == producer]
    position = 0
    while position < len(items):
        if rng.random() < 0.4:  # a burst: several back to back
            burst = items[position : position + rng.randint(3, 8)]
            for item in burst:
                deliver(inbox, item, rng)
            position += len(burst)
            time.sleep(rng.uniform(0.5, 1.5) * pace)
        else:  # the steady drip
            deliver(inbox, items[position], rng)
            position += 1
            time.sleep(rng.uniform(0.1, 0.5) * pace)
    return 0


# -- chaos --------------------------------------------------------------------------------------


class Chaos(threading.Thread):
    """SIGKILLs daemon A's worker at random moments; at most ``per_video`` times per video (by
    the status file's current job) and never on a video's last attempt, when ``per_video`` is set."""

    def __init__(self, daemon: DaemonProcess, rng: random.Random, every: tuple[float, float], per_video: int | None = None) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.target, self.rng, self.every, self.per_video = daemon, rng, every, per_video
        self.kills = 0
        self.kills_while_busy = 0
        self.spared = 0  # kills left out so that no video's attempts are exhausted by chaos
        self.killed_inputs: Counter[str] = Counter()  # input name -> kills while it was the current job
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(*self.every)):
            status = self._busy_status(within_s=1.5)  # prefer killing mid-video
            pid = (status.get("worker") or {}).get("pid")
            if not pid or not _is_child(self.target, pid):
                continue
            job = status.get("current_job") or {}
            if job and not self._may_kill(job):
                self.spared += 1
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.kills += 1
            self.kills_while_busy += bool(job)
            if job:
                self.killed_inputs[job["input_name"]] += 1

    def _may_kill(self, job: dict) -> bool:
        if self.per_video is None:
            return True
        return self.killed_inputs[job["input_name"]] < self.per_video and (job.get("attempt") or 1) < MAX_ATTEMPTS

    def _busy_status(self, within_s: float) -> dict:
        until = time.monotonic() + within_s
        while True:
            status = self.target.status()
            if status.get("current_job") or time.monotonic() >= until or self.halt.is_set():
                return status
            time.sleep(0.01)


def _is_child(daemon: DaemonProcess, pid: int) -> bool:
    try:
        return psutil.Process(pid).ppid() == daemon.proc.pid
    except psutil.Error:
        return False


class RssSampler(threading.Thread):
    """Largest RSS seen per daemon process (by daemon name) and per daemon's workers, and the
    oldest heartbeat seen in daemon A's status file (A is never killed: its heartbeat must
    keep coming through worker kills, claims and publishes)."""

    def __init__(self, daemons: dict[str, DaemonProcess]) -> None:
        super().__init__(name="soak-rss", daemon=True)
        self.daemons = daemons
        self.max_daemon_mb: dict[str, float] = {}
        self.max_worker_mb: dict[str, float] = {}
        self.max_heartbeat_age_s = 0.0
        self.halt = threading.Event()

    def _heartbeat_age(self) -> None:
        status = self.daemons["A"].status()
        if status.get("state") in ("ready", "busy", "degraded"):
            age = time.time() - datetime.fromisoformat(status["heartbeat_at"].replace("Z", "+00:00")).timestamp()
            self.max_heartbeat_age_s = max(self.max_heartbeat_age_s, age)

    def run(self) -> None:
        while not self.halt.wait(0.5):
            self._heartbeat_age()
            for name, daemon in list(self.daemons.items()):
                try:
                    process = psutil.Process(daemon.proc.pid)
                    rss = process.memory_info().rss / 2**20
                    workers = [child.memory_info().rss / 2**20 for child in process.children()]
                except psutil.Error:
                    continue
                self.max_daemon_mb[name] = max(self.max_daemon_mb.get(name, 0.0), rss)
                if workers:
                    self.max_worker_mb[name] = max(self.max_worker_mb.get(name, 0.0), *workers)


# -- the run ----------------------------------------------------------------------------------


def daemon_kill_points(videos: int, kills: int, rng: random.Random) -> list[int]:
    """Outcome counts at which to kill daemon B: one between 25 % and 50 % of the run, or
    ``kills`` spread evenly from 10 % to 90 %."""
    if kills <= 1:
        return [max(1, int(videos * rng.uniform(0.25, 0.5)))] if kills == 1 else []
    return [max(1, int(videos * (0.1 + 0.8 * k / (kills - 1)))) for k in range(kills)]


def outcome_documents(outbox: Path) -> dict[str, dict]:
    """Every outcome as a consumer reads it (a manifest with its frames file verified)."""
    found = {}
    for path in outbox.iterdir():
        if path.is_file() and path.name.endswith((".result.json", ".error.json")):
            found[path.name] = read_outcome(path)
    return found


def orphan_companions(outbox: Path, documents: dict[str, dict]) -> list[str]:
    """Frames (or export) files that no published manifest names."""
    named = {entry["name"] for doc in documents.values() for entry in doc.get("files", {}).values()}
    return sorted(p.name for p in outbox.iterdir() if p.is_file() and not p.name.endswith((".result.json", ".error.json")) and p.name not in named)


def soak(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.workdir or tempfile.mkdtemp(prefix="posed-soak-"))
    inbox, outbox = root / "inbox", root / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    plan = make_plan(args.videos, args.seed)
    plan_file = root / "plan.json"
    plan_file.write_text(json.dumps(plan, ensure_ascii=False))
    names = {item["name"] for item in plan}
    started = time.monotonic()

    overrides = daemon_overrides(args.slow_ms, args.status_interval)
    daemons = {"A": DaemonProcess(root, "A", overrides).start(), "B": DaemonProcess(root, "B", overrides).start()}
    for daemon in daemons.values():
        daemon.wait_ready(120)
    reader = OutboxReader(outbox, validate_document)
    reader.start()
    sampler = RssSampler(daemons)
    sampler.start()
    chaos = Chaos(daemons["A"], rng, (args.kill_every_min, args.kill_every_max), args.chaos_kills_per_video)
    chaos.start()
    producers = [
        subprocess.Popen([sys.executable, __file__, "--producer", str(k), "--inbox", str(inbox), "--plan", str(plan_file),
                          "--seed", str(args.seed), "--pace", str(args.pace)], cwd=ROOT)  # fmt: skip
        for k in (0, 1)
    ]

    def outcomes_so_far() -> int:
        return len({doc["input"]["name"] for doc in outcome_documents(outbox).values()} & names)

    # kill -9 daemon B (once by default, --daemon-kills times), spread over the middle of the
    # run, preferably while it is busy; it is restarted each time.
    restarts, b_killed_busy = 0, False
    deadline = time.monotonic() + args.timeout
    for kill_at in daemon_kill_points(args.videos, args.daemon_kills, rng):
        while outcomes_so_far() < kill_at and time.monotonic() < deadline:
            time.sleep(0.1)
        busy_by = time.monotonic() + 3.0
        while not daemons["B"].status().get("current_job") and time.monotonic() < busy_by:
            time.sleep(0.02)
        b_job = daemons["B"].status().get("current_job")
        b_killed_busy += bool(b_job)
        if b_job:  # a kill -9 costs that video an attempt too (counted on at the takeover)
            chaos.killed_inputs[b_job["input_name"]] += 1
        daemons["B"].kill9()
        time.sleep(rng.uniform(0.5, 2.0))
        daemons["B"] = DaemonProcess(root, "B", overrides).start()
        sampler.daemons = daemons
        restarts += 1

    for producer in producers:
        producer.wait(timeout=max(1.0, deadline - time.monotonic()))

    def finished() -> bool:
        leftover = [n for n in os.listdir(inbox) if n in names]
        return outcomes_so_far() == len(names) and not leftover

    while not finished() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # long enough for a late duplicate to show up
    chaos.halt.set()
    stop_codes = {name: daemon.stop(timeout=60) for name, daemon in daemons.items()}
    reader.stop()
    sampler.halt.set()
    return tally(root, plan, outbox, inbox, reader, chaos, sampler, restarts, b_killed_busy, stop_codes,
                 time.monotonic() - started, args)  # fmt: skip


def tally(root, plan, outbox, inbox, reader, chaos, sampler, restarts, b_killed_busy, stop_codes, elapsed, args) -> dict:
    documents = outcome_documents(outbox)
    by_input: dict[str, list[tuple[str, dict]]] = {}
    for file_name, document in documents.items():
        by_input.setdefault(document["input"]["name"], []).append((file_name, document))
    expected = {item["name"]: item for item in plan}
    codes = Counter()
    unexpected, misplaced, designed = [], [], []
    retry_causes = _retry_causes_by_input(root)
    for name, item in expected.items():
        for _, document in by_input.get(name, [])[:1]:
            got = "result" if document["status"] == "ok" else document["error"]["code"]
            codes[got] += 1
            if got != item["expect"] and _killed_by_chaos(item, document, retry_causes.get(name, [])):
                designed.append(f"{name}: {got} after {document['attempts']} attempt(s), each killed by the soak's chaos")
            elif got != item["expect"]:
                unexpected.append(f"{name}: expected {item['expect']}, got {got}")
            folder = "done" if got == "result" else "failed"
            if not (inbox / folder / name).exists():
                misplaced.append(f"{name}: not in {folder}/")
    duplicates = {name: sorted(f for f, _ in found) for name, found in by_input.items() if len(found) > 1}
    lost = sorted(name for name in expected if name not in by_input)
    unknown = sorted(name for name in by_input if name not in expected)
    lock_dir = inbox / ".posed" / "locks"
    leftover_locks = sorted(os.listdir(lock_dir)) if lock_dir.is_dir() else []
    left_in_inbox = sorted(n for n in os.listdir(inbox) if not n.startswith(".") and (inbox / n).is_file())
    tmp_left = sorted(p.name for p in (outbox / ".tmp").glob("*")) if (outbox / ".tmp").is_dir() else []
    receipts_dir = outbox / ".posed" / "receipts"
    receipts_left = sorted(os.listdir(receipts_dir)) if receipts_dir.is_dir() else []
    events = Counter()
    for name in ("A", "B"):
        for event in DaemonProcess(root, name).log_events():
            events[event.get("event")] += 1
    max_rss = max([*sampler.max_daemon_mb.values(), 0.0])
    result = {
        "inputs": len(expected),
        "outcomes": sum(len(found) for found in by_input.values()),
        "results": codes.get("result", 0),
        "errors": sum(count for code, count in codes.items() if code != "result"),
        "codes": dict(sorted(codes.items())),
        "duplicates": len(duplicates),
        "losses": len(lost),
        "unknown_outcomes": len(unknown),
        "unexpected_outcomes": len(unexpected),
        "designed_chaos_outcomes": len(designed),
        "chaos_kills_spared": chaos.spared,
        "misplaced_inputs": len(misplaced),
        "orphan_companions": len(orphan_companions(outbox, documents)),
        "left_in_inbox": len(left_in_inbox),
        "partial_reads": len(reader.partial),
        "consumer_reads": reader.reads,
        "leftover_locks": len(leftover_locks),
        "leftover_tmp_files": len(tmp_left),
        "leftover_receipts": len(receipts_left),
        "crash_videos": sum(1 for item in plan if item["kind"] == "crash"),
        "worker_sigkills_injected": chaos.kills,
        "worker_sigkills_while_busy": chaos.kills_while_busy,
        "daemon_kill9": restarts,
        "max_heartbeat_age_s": round(sampler.max_heartbeat_age_s, 2),
        "status_interval_s": args.status_interval,
        "max_heartbeat_age_intervals": round(sampler.max_heartbeat_age_s / args.status_interval, 2),
        "daemon_kill9_while_busy": int(b_killed_busy),
        "daemon_restarts": restarts,
        "worker_deaths_logged": events.get("worker.died", 0),
        "job_retries_logged": events.get("job.retry", 0),
        "claim_takeovers_logged": events.get("claim.takeover", 0),
        "already_published_recoveries": events.get("job.already_published", 0),
        "max_rss_mb_per_daemon": {k: round(v, 1) for k, v in sorted(sampler.max_daemon_mb.items())},
        "max_rss_mb_per_worker": {k: round(v, 1) for k, v in sorted(sampler.max_worker_mb.items())},
        "rss_bound_mb": args.rss_limit_mb,
        "daemon_stop_codes": stop_codes,
        "deliveries": dict(Counter(item["delivery"] for item in plan)),
        "elapsed_s": round(elapsed, 1),
        "workdir": str(root),
        "designed": designed[:20],  # not problems: good videos every attempt of which chaos killed
        "problems": {"duplicates": duplicates, "lost": lost[:20], "unknown": unknown[:20], "unexpected": unexpected[:20],
                     "misplaced": misplaced[:20], "left_in_inbox": left_in_inbox[:20], "partial": reader.partial[:5],
                     "locks": leftover_locks[:20]},  # fmt: skip
    }
    result["ok"] = (
        result["duplicates"] == result["losses"] == result["unknown_outcomes"] == result["unexpected_outcomes"] == 0
        and result["misplaced_inputs"] == result["left_in_inbox"] == result["partial_reads"] == result["leftover_locks"] == 0
        and result["orphan_companions"] == 0
        and result["outcomes"] == result["inputs"]
        and max_rss < args.rss_limit_mb
    )
    return result


def _retry_causes_by_input(root: Path) -> dict[str, list[str]]:
    """Input name -> the cause of each crash retry either daemon logged for it (job ids are
    ``<input name>@<instance>-<n>``)."""
    causes: dict[str, list[str]] = {}
    for name in ("A", "B"):
        daemon = DaemonProcess(root, name)
        for event in daemon.log_events() if daemon.log_path.exists() else []:
            if event.get("event") == "job.retry" and "@" in str(event.get("job_id")):
                causes.setdefault(event["job_id"].rsplit("@", 1)[0], []).append(str(event.get("cause")))
    return causes


def _killed_by_chaos(item: dict[str, Any], document: dict[str, Any], retry_causes: list[str]) -> bool:
    """A designed outcome: a good video ended E_WORKER_CRASH because the soak itself SIGKILLed it
    on every attempt (its worker killed by Chaos, or its daemon by kill -9, which counts as an
    attempt on takeover). Nothing else in the soak sends SIGKILL; a SIGSEGV or an exit code on a
    good video stays a defect."""
    if item["expect"] != "result" or document.get("status") != "error" or document["error"]["code"] != "E_WORKER_CRASH":
        return False
    return document["error"].get("details", {}).get("signal") == "SIGKILL" and all("SIGKILL" in cause for cause in retry_causes)


def print_tally(result: dict[str, Any]) -> None:
    width = max(len(key) for key in result)
    print("posed soak tally")
    for key, value in result.items():
        if key != "problems":
            print(f"  {key:<{width}}  {value}")
    problems = {k: v for k, v in result["problems"].items() if v}
    if problems:
        print("  problems:", json.dumps(problems, ensure_ascii=False, indent=2))
    print("SOAK OK" if result["ok"] else "SOAK FAILED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--slow-ms", type=float, default=20.0, help="fault backend delay per frame (crash videos)")
    parser.add_argument("--pace", type=float, default=1.0, help="scale the producers' pauses")
    parser.add_argument("--kill-every-min", type=float, default=1.0)
    parser.add_argument("--kill-every-max", type=float, default=4.0)
    parser.add_argument("--daemon-kills", type=int, default=1, help="kill -9 daemon B this many times (restarted each time)")
    parser.add_argument("--chaos-kills-per-video", type=int, default=None,
                        help="kill any one video's worker at most this often, never on its last attempt (default: no limit)")
    parser.add_argument("--rss-limit-mb", type=float, default=400.0)
    parser.add_argument("--status-interval", type=float, default=0.2, help="daemon.status_interval_s of both daemons (the service default is 2.0)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the whole run (default 120 + 3 per video)")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a new temp dir)")
    parser.add_argument("--json", type=Path, help="also write the tally here")
    parser.add_argument("--producer", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inbox", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.producer is not None:
        return run_producer(args.inbox, args.plan, args.producer, args.seed, args.pace)
    if args.timeout is None:
        args.timeout = 120.0 + 3.0 * args.videos
    print(f"posed soak: {args.videos} videos, seed {args.seed}", flush=True)
    result = soak(args)
    print_tally(result)
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
