"""Command line: ``posed run | process | status | doctor | bench | eval | eval-video``.

The only module that turns errors into exit codes; everything below raises.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from daemon import __version__
from daemon.errors import BackendUnavailable, ConfigError, JobError, PosedError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_NO_DAEMON_ALIVE = 5  # posed status: status files, but every daemon is down or stopped
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posed", description="Pose-tracking inbox daemon.")
    parser.add_argument("--version", action="version", version=f"posed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    parser.set_defaults(commands=commands.choices)  # each subcommand's parser, for its own usage errors

    run = commands.add_parser("run", help="watch the inbox and process videos until stopped")
    _config_arguments(run)
    run.add_argument("--inbox", help="inbox directory (overrides inbox.path)")
    run.add_argument("--outbox", help="outbox directory (overrides outbox.path)")
    run.add_argument("--queue", metavar="URL", help="take jobs from BullMQ on Redis: redis://[user:pass@]host:port/db (intake.kind=bullmq)")

    process = commands.add_parser("process", help="run one video through the pipeline, no watching")
    process.add_argument("video", type=Path)
    process.add_argument("--out", type=Path, help="result file (default: <video name>.result.json here)")
    _config_arguments(process)

    status = commands.add_parser("status", help="show daemon and job state from the outbox")
    status.add_argument("--outbox", type=Path, help="outbox directory (default: outbox.path of the config)")
    status.add_argument("--json", action="store_true", help="print the raw status documents")
    status.add_argument("--watch", action="store_true", help="refresh every 2 s (a live progress bar)")
    status.add_argument("--queue", metavar="URL", help="show the BullMQ queue on this Redis: counts, active jobs, workers")
    _config_arguments(status)

    doctor = commands.add_parser("doctor", help="preflight: is this machine ready for the configured backend?")
    doctor.add_argument("--all", action="store_true", dest="show_all", help="also list the checks of backends not configured")
    _config_arguments(doctor)

    bench = commands.add_parser("bench", help="measure frames/s, stage times, floors and memory on a video")
    bench.add_argument("video", type=Path)
    bench.add_argument("--backend", help="backend to measure (overrides backend.name)")
    bench.add_argument("--json", type=Path, dest="json_out", help="write the figures as JSON here")
    bench.add_argument("--plot", type=Path, help="write a PNG of memory and frames/s over the run")
    bench.add_argument("--frames", type=int, help="stop after N frames (loops the clip if needed)")
    bench.add_argument("--loop", type=int, default=1, help="play the clip K times")
    bench.add_argument("--baseline", choices=["stock"], help="also measure PHALP's stock per-frame loop (GPU)")
    bench.add_argument(
        "--synthetic-weights", action="store_true",
        help="phalp only: the real architectures with random weights of the right shapes, no downloads or SMPL file needed",
    )
    _config_arguments(bench)

    evaluate = commands.add_parser("eval", help="score a result against COCO-keypoints or PoseTrack annotations")
    evaluate.add_argument("result", nargs="?", type=Path, help="a <stem>.result.json")
    evaluate.add_argument("annotations", nargs="?", type=Path, help="COCO keypoints or PoseTrack 18/21 json")
    evaluate.add_argument("--frame-map", type=Path, help="which frame shows which image (posed eval-video writes it)")
    evaluate.add_argument("--batch", type=Path, help="JSON list of {result, annotations[, frame_map, name]} instead")
    evaluate.add_argument("--json", type=Path, dest="json_out", help="also write the full report as JSON here")

    video = commands.add_parser("eval-video", help="build videos (and frame maps) from annotated images, for posed eval")
    video.add_argument("annotations", type=Path)
    video.add_argument("images", type=Path, help="folder the annotations' file_name paths are relative to")
    video.add_argument("out", type=Path, help="folder for the videos, frame maps and eval-batch.json")
    video.add_argument("--fps", type=float, default=30.0, help="frame rate of the videos (default 30, a camera's)")
    video.add_argument("--still-frames", type=int, default=10, help="frames a still is repeated for (default 10)")
    return parser


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file layered over configs/posed.yaml")
    # default=[]: without it argparse lists "key=value" as required when a positional is missing.
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="config overrides, e.g. inbox.settle_s=5")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Options and ``key=value`` overrides in any order: ``process clip.mp4 --out r.json a.b=1``.

    argparse hands the subcommand's positionals out in one go (video, then overrides), so an
    override after an option is left over; it is taken here. Anything else left over is refused
    as argparse would, by the subcommand's parser. (parse_intermixed_args refuses subparsers.)
    """
    parser = build_parser()
    args, leftover = parser.parse_known_args(argv)
    overrides = [token for token in leftover if _is_override(token)]
    unknown = [token for token in leftover if not _is_override(token)]
    command_parser = args.commands[args.command]
    takes_overrides = hasattr(args, "overrides")  # eval and eval-video read files, not config
    if unknown or (overrides and not takes_overrides):
        command_parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    if takes_overrides:
        args.overrides = [*args.overrides, *overrides]
    del args.commands
    return args


def _is_override(token: str) -> bool:
    key, equals, _ = token.partition("=")
    return bool(equals) and bool(key) and not key.startswith("-")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    from daemon.log import configure_logging

    configure_logging(process=args.command)
    handler = {
        "run": _run, "process": _process, "status": _status, "doctor": _doctor, "bench": _bench,
        "eval": _eval, "eval-video": _eval_video,
    }[args.command]  # fmt: skip
    try:
        return handler(args)
    except ConfigError as exc:
        sys.stderr.write(f"posed: {exc}\n")
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _load(args: argparse.Namespace, extra: list[str] | None = None):
    from daemon.config import load_config

    return load_config(args.config, [*(extra or []), *args.overrides])


def _run(args: argparse.Namespace) -> int:
    from daemon.service import Daemon

    extra = []
    if args.inbox:
        extra.append(f"inbox.path={args.inbox}")
    if args.outbox:
        extra.append(f"outbox.path={args.outbox}")
    if args.queue:
        extra += ["intake.kind=bullmq", f"intake.url={args.queue}"]
    return Daemon(_load(args, extra)).run()


def _process(args: argparse.Namespace) -> int:
    """One video in this process: same decoder, backend and writer as the daemon."""
    from daemon.processing.backends import create_backend
    from daemon.processing.job import JobSpec, run_job
    from daemon.log import get_logger
    from daemon.publishing.naming import RESULT_SUFFIX
    from daemon.publishing.outcomes import OutcomeWriter
    from daemon.publishing.results import commit_local_result

    if not _video_exists(args.video, "posed process"):
        return EXIT_FAILED
    cfg = _load(args)
    log = get_logger("posed.process")
    out = args.out or Path(f"{args.video.name}{RESULT_SUFFIX}")
    tmp = out.with_name(f".{out.name}.partial")
    backend = create_backend(cfg)
    try:
        info = backend.load(lambda what: log.info("process.loading", what=what))
    except BackendUnavailable as exc:
        sys.stderr.write(f"posed: backend unavailable: {exc}\n")
        return EXIT_FAILED
    spec = JobSpec(job_id=f"process-{int(time.time())}", input_path=args.video, result_tmp=tmp,
                   input_info=OutcomeWriter(cfg, Path(cfg.outbox.path)).input_info(args.video, args.video.stat()))
    tmp.unlink(missing_ok=True)
    try:
        summary = run_job(spec, backend, info, cfg)
    except JobError as exc:
        sys.stderr.write(f"posed: {exc.code.value}: {exc.message}\n")
        return EXIT_FAILED
    commit_local_result(tmp, out)
    log.info("process.done", out=str(out), **{k: summary[k] for k in ("frames", "frames_with_person", "frames_per_second")})
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    if args.queue:
        return _queue_status(args)
    from daemon.ops.status import read_status_files, render

    outbox = args.outbox or Path(_load(args).outbox.path)
    while True:
        files = read_status_files(outbox)
        docs = [doc for doc, _ in files]
        if args.json:
            sys.stdout.write(json.dumps(docs, indent=1) + "\n")
        elif not docs:
            sys.stdout.write(f"no daemon status in {outbox / '.posed' / 'status'} (is posed running with this outbox?)\n")
        else:
            text = "\n".join(render(doc, file_mtime=mtime) for doc, mtime in files)
            sys.stdout.write(("\x1b[2J\x1b[H" if args.watch else "") + text + "\n")
        sys.stdout.flush()
        if not args.watch:
            return _status_exit_code(files)
        time.sleep(2.0)


def _status_exit_code(files: list[tuple[dict, float]]) -> int:
    """0: at least one daemon on this outbox is alive; 1: no status file at all; 5
    (EXIT_NO_DAEMON_ALIVE): every daemon is down or stopped (README, "Health")."""
    from daemon.ops.health import judge

    if not files:
        return EXIT_FAILED
    alive = any(judge(doc, file_mtime=mtime).verdict == "alive" for doc, mtime in files)
    return EXIT_OK if alive else EXIT_NO_DAEMON_ALIVE


def _queue_status(args: argparse.Namespace) -> int:
    from daemon.intake.queue.status import read_queue_status, render_queue_status

    queue = _load(args).intake.queue
    while True:
        try:
            doc = read_queue_status(args.queue, queue)
        except Exception as exc:  # noqa: BLE001 - any failure to read is reported, not raised
            sys.stderr.write(f"posed: cannot read queue {queue!r}: {type(exc).__name__}: {exc}\n")
            return EXIT_FAILED
        text = json.dumps(doc, indent=1) if args.json else render_queue_status(doc)
        sys.stdout.write(("\x1b[2J\x1b[H" if args.watch else "") + text + "\n")
        sys.stdout.flush()
        if not args.watch:
            return EXIT_OK
        time.sleep(2.0)


def _doctor(args: argparse.Namespace) -> int:
    from daemon.ops.doctor import run_doctor

    return run_doctor(_load(args), out=sys.stdout, show_all=args.show_all)


def _bench(args: argparse.Namespace) -> int:
    from daemon.bench.runner import run_bench

    extra = [f"backend.name={args.backend}"] if args.backend else []
    try:
        if args.synthetic_weights:
            return _bench_synthetic(args, extra)  # names a missing video itself, before any file is made
        if not _video_exists(args.video, "posed bench"):
            return EXIT_FAILED
        return run_bench(_load(args, extra), args)
    except (JobError, PosedError) as exc:
        sys.stderr.write(f"posed bench: {exc}\n")
        return EXIT_FAILED


def _bench_synthetic(args: argparse.Namespace, extra: list[str]) -> int:
    """The bench on a temporary cache of synthetic model files (written before anything is measured)."""
    import tempfile

    from daemon.processing.backends.phalp import synthetic
    from daemon.bench.runner import run_bench
    from daemon.config import load_config

    if not args.video.is_file() and "=" in args.video.name:  # `posed bench backend.name=phalp --synthetic-weights`
        raise ConfigError(f"no such video: {args.video} (the first argument is the video: posed bench VIDEO key=value ... --synthetic-weights)")
    synthetic.require_gpu_stack(_load(args, extra).backend.name)  # fail fast: seconds, not 3 GB of files later
    if not args.video.is_file():
        raise ConfigError(f"no such video: {args.video}")
    with tempfile.TemporaryDirectory(prefix="posed-synthetic-") as directory:
        overrides = [*extra, *synthetic.synthetic_overrides(Path(directory), args.overrides), *args.overrides]
        cfg = load_config(args.config, overrides)
        synthetic.prepare_cache(cfg.backend.phalp, overrides)
        return run_bench(cfg, args)


def _eval(args: argparse.Namespace) -> int:
    from daemon.evaluation.report import render
    from daemon.evaluation.runner import EvalItem, evaluate, load_batch

    if bool(args.batch) == bool(args.result and args.annotations):
        sys.stderr.write("posed eval: give RESULT ANNOTATIONS, or --batch LIST.json\n")
        return EXIT_USAGE
    try:
        items = load_batch(args.batch) if args.batch else [EvalItem(args.result, args.annotations, args.frame_map)]
        report = evaluate(items)
    except PosedError as exc:
        sys.stderr.write(f"posed eval: {exc}\n")
        return EXIT_FAILED
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(render(report) + "\n")
    return EXIT_OK


def _eval_video(args: argparse.Namespace) -> int:
    from daemon.evaluation.eval_video import build_eval_videos

    try:
        written = build_eval_videos(args.annotations, args.images, args.out, fps=args.fps, still_frames=args.still_frames)
    except PosedError as exc:
        sys.stderr.write(f"posed eval-video: {exc}\n")
        return EXIT_FAILED
    for video in written:
        sys.stdout.write(f"{video}\n")
    sys.stdout.write(f"batch list: {args.out / 'eval-batch.json'} (posed process each video, then posed eval --batch it)\n")
    return EXIT_OK


def _video_exists(video: Path, command: str) -> bool:
    """Checked before the model loads (a minute for PHALP): a typo is reported at once."""
    if os.path.lexists(video):
        return True
    sys.stderr.write(f"{command}: {video}: not found\n")
    return False


if __name__ == "__main__":
    sys.exit(main())
