"""``posed doctor`` as CI runs it (no GPU stack at all), and on a simulated ready machine."""

from __future__ import annotations

import hashlib
import io
import json
import textwrap

import pytest

from daemon.processing.backends.phalp import preflight
from daemon.processing.backends.phalp.manifest import load_manifest
from daemon.processing.backends.phalp.preflight import PROBE_MODULES, CommandResult
from daemon.processing.backends.phalp.host_memory import HostFiles
from daemon.config import load_config
from daemon.ops.doctor import EXIT_NOT_READY, EXIT_READY, run_doctor
from tests.fakes.phalp_stack import write_model_files


def config(tmp_path, *overrides: str):
    base = [
        f"inbox.path={tmp_path / 'inbox'}",
        f"outbox.path={tmp_path / 'outbox'}",
        f"backend.phalp.cache_dir={tmp_path / 'cache'}",
    ]
    return load_config(overrides=[*base, *overrides])


def doctor(cfg, host: HostFiles | None = None, *, show_all: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = run_doctor(cfg, out=out, host=host, show_all=show_all)
    return code, out.getvalue()


def write_meminfo(path, *, total_gib: float, available_gib: float, swap_gib: float = 2.0):
    """A /proc/meminfo as the kernel writes it (kB), for a VM of the given size."""
    kib = 1024 * 1024
    path.write_text(
        f"MemTotal:       {int(total_gib * kib)} kB\nMemFree:        {int(available_gib * kib * 0.8)} kB\n"
        f"MemAvailable:   {int(available_gib * kib)} kB\nBuffers:          123456 kB\nCached:         1234567 kB\n"
        f"SwapCached:            0 kB\nSwapTotal:      {int(swap_gib * kib)} kB\nSwapFree:       {int(swap_gib * kib)} kB\n"
        "HugePages_Total:       0\nHugepagesize:       2048 kB\n"
    )
    return path


def host_files(tmp_path, *, total_gib: float, available_gib: float, wslconfig: str | None = None, swap_gib: float = 2.0) -> HostFiles:
    """A VM's meminfo and, optionally, a Windows user's .wslconfig under a fake /mnt/c/Users."""
    users = tmp_path / "mnt-c-Users"
    (users / "Public").mkdir(parents=True, exist_ok=True)  # no .wslconfig there, as on Windows
    if wslconfig is not None:
        (users / "alex").mkdir(exist_ok=True)
        (users / "alex" / ".wslconfig").write_text(wslconfig, encoding="utf-8")
    meminfo = write_meminfo(tmp_path / "meminfo", total_gib=total_gib, available_gib=available_gib, swap_gib=swap_gib)
    return HostFiles(meminfo=meminfo, windows_users=users)


def test_on_a_machine_without_the_gpu_stack_the_report_names_every_missing_piece_and_exits_non_zero(tmp_path):
    code, report = doctor(config(tmp_path, "backend.name=phalp"))
    assert code == EXIT_NOT_READY
    assert report.rstrip().splitlines()[-1].startswith("NOT READY for backend.name=phalp")
    assert "NVIDIA driver (nvidia-smi)" in report
    for module in PROBE_MODULES[:-1]:
        if module != preflight.DETECTRON2_EXTENSION:
            assert f"import {module}:" in report
    assert "[info] detectron2 compiled extension (_C): absent, as expected" in report  # never a failure
    assert "neural_renderer" not in report and "chumpy" not in report and "nvcc" not in report
    assert "posed GPU wiring (all of the above together)" in report
    for model_file in load_manifest(config(tmp_path).backend.phalp).required("maskrcnn"):
        assert f"[FAIL] model file {model_file.key}: missing: {model_file.path}" in report
    failures = [line for line in report.splitlines() if "[FAIL]" in line]
    fixes = [line for line in report.splitlines() if line.strip().startswith("fix:")]
    assert len(fixes) >= len(failures) > 10  # every failure comes with its fix
    assert "smplify.is.tue.mpg.de" in report and "scripts/setup-gpu.sh" in report
    assert "inbox file system" in report


def test_with_the_cpu_backend_the_gpu_checks_are_information_not_blockers(tmp_path):
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"), show_all=True)
    assert "not selected (backend.name=mediapipe), for information" in report
    assert "[miss] model file hmr2_checkpoint" in report and "[FAIL] model file" not in report
    assert "import mediapipe" in report
    assert code == EXIT_READY and report.rstrip().endswith("READY for backend.name=mediapipe")


def test_the_configured_backends_verdict_comes_first_and_the_other_backend_is_one_line(tmp_path):
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    lines = report.rstrip().splitlines()
    assert code == EXIT_READY and lines[0] == "posed doctor: READY for backend.name=mediapipe"
    assert "[  ok] import mediapipe" in report
    [gpu] = [line for line in lines if line.startswith("GPU backend")]
    assert "not selected (backend.name=mediapipe)" in gpu and "posed doctor --all lists them" in gpu
    assert "model file" not in report and "[miss]" not in report and "fix:" not in report
    assert len(lines) <= 20, report  # was 60+ with every GPU check and its fix


def test_when_not_ready_the_first_line_says_so_and_names_the_problems(tmp_path):
    (tmp_path / "outbox").write_text("a file, not a directory")
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    assert code == EXIT_NOT_READY
    assert report.splitlines()[0] == "posed doctor: NOT READY for backend.name=mediapipe: 1 problem(s): outbox writable"


def test_an_outbox_that_is_a_file_fails_with_a_fix(tmp_path):
    (tmp_path / "outbox").write_text("not a folder")
    code, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    assert code == EXIT_NOT_READY
    assert "[FAIL] outbox writable" in report and "point outbox.path at a directory" in report


def test_an_inbox_on_9p_with_inotify_forced_is_warned_about(tmp_path, monkeypatch):
    import daemon.intake.folder.mounts

    monkeypatch.setattr(daemon.intake.folder.mounts, "filesystem_type", lambda path, mountinfo=None: "9p")
    _, report = doctor(config(tmp_path, "backend.name=mediapipe", "inbox.observer=inotify"))
    assert "[warn] inbox file system: 9p" in report and "inbox.observer=auto" in report
    _, report = doctor(config(tmp_path, "backend.name=mediapipe"))
    assert "[  ok] inbox file system: 9p" in report and "polling every 2 s" in report


def _ready_machine(tmp_path, monkeypatch, manifest_text: str | None = None, driver_cuda: str = "12.8"):
    """Model files present, nvidia-smi and the import probe answering as on a working install."""
    overrides = ["backend.name=phalp"]
    if manifest_text is not None:
        manifest = tmp_path / "models.yaml"
        manifest.write_text(manifest_text)
        overrides.append(f"backend.phalp.models_manifest={manifest}")
    cfg = config(tmp_path, *overrides)
    write_model_files(load_manifest(cfg.backend.phalp).required("maskrcnn"))
    commands = []

    def runner(argv, timeout, env=None):
        commands.append(argv)
        if argv[0].endswith("nvidia-smi") and len(argv) > 1:
            return CommandResult(0, "NVIDIA GeForce RTX 4060 Laptop GPU, 572.16, 8188, 7400\n", "")
        if argv[0].endswith("nvidia-smi"):
            return CommandResult(0, f"| NVIDIA-SMI 570.86.10   Driver Version: 572.16   CUDA Version: {driver_cuda}     |\n", "")
        lines = [{"step": m, "ok": m != preflight.DETECTRON2_EXTENSION, "version": "1.0", "error": "ModuleNotFoundError"} for m in PROBE_MODULES]
        lines.append({"step": "cuda", "ok": True, "torch": "2.11.0+cu128", "torch_cuda": "12.8", "available": True,
                      "devices": [{"index": 0, "name": "RTX 4060", "free": 7.4 * 2**30, "total": 8 * 2**30}]})
        lines.append({"step": "smpl", "ok": True, "keys": ["J_regressor", "shapedirs"], "has_shapedirs": True, "needs_conversion": []})
        return CommandResult(0, "library noise\n" + "\n".join(json.dumps(line) for line in lines), "")

    monkeypatch.setattr(preflight.shutil, "which", lambda name: "/usr/lib/wsl/lib/nvidia-smi")
    monkeypatch.setattr(preflight, "run_command", runner)
    return cfg, commands


def test_a_working_install_is_ready_and_commands_are_argv_lists(tmp_path, monkeypatch):
    cfg, commands = _ready_machine(tmp_path, monkeypatch)
    code, report = doctor(cfg, host_files(tmp_path, total_gib=15.5, available_gib=14.0))
    assert code == EXIT_READY, report
    assert "[  ok] host memory for loading the models: 15.5 GiB in this VM" in report
    assert "RTX 4060 Laptop GPU, driver 572.16" in report and "7.2 GiB free" in report
    assert "[  ok] driver covers torch's CUDA: driver supports CUDA 12.8, torch is built for CUDA 12.8" in report
    assert "[info] detectron2 compiled extension (_C): absent, as expected" in report
    assert "[  ok] import pkg_resources" in report
    assert "[  ok] SMPL file readable" in report
    assert all(isinstance(argv, list) for argv in commands)
    probe = next(argv for argv in commands if "daemon.processing.backends.phalp.probe" in argv)
    assert "--smpl" in probe and "--cuda" in probe


@pytest.mark.parametrize(
    ("driver_cuda", "label", "words"),
    [
        ("12.4", "warn", "driver supports CUDA 12.4, older than torch's 12.8 (same major: usually runs)"),
        ("11.8", "FAIL", "driver supports CUDA 11.8, torch is built for CUDA 12.8: torch cannot use the GPU"),
        ("13.0", "  ok", "driver supports CUDA 13.0, torch is built for CUDA 12.8"),
    ],
)
def test_the_drivers_cuda_version_must_cover_the_one_torch_was_built_for(tmp_path, monkeypatch, driver_cuda, label, words):
    cfg, _ = _ready_machine(tmp_path, monkeypatch, driver_cuda=driver_cuda)
    code, report = doctor(cfg, host_files(tmp_path, total_gib=15.5, available_gib=14.0))
    assert f"[{label}] driver covers torch's CUDA: {words}" in report
    assert (code == EXIT_NOT_READY) == (label == "FAIL")
    if label != "  ok":
        assert "update the Windows NVIDIA driver to R570 or newer" in report


def test_an_smpl_file_still_holding_chumpy_objects_is_sent_to_fetch_models(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    ready_runner = preflight.run_command

    def unconverted(argv, timeout, env=None):
        result = ready_runner(argv, timeout, env)
        return CommandResult(0, result.stdout.replace('"needs_conversion": []', '"needs_conversion": ["posedirs", "shapedirs"]'), "")

    monkeypatch.setattr(preflight, "run_command", unconverted)
    code, report = doctor(cfg, host_files(tmp_path, total_gib=15.5, available_gib=14.0))
    assert code == EXIT_NOT_READY
    assert "[FAIL] SMPL file readable" in report and "still holds chumpy/scipy objects (posedirs, shapedirs...)" in report
    assert "scripts/fetch-models.sh --smpl" in report


def test_a_crash_while_importing_is_pinned_on_the_module_that_crashed(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    ready_runner = preflight.run_command

    def crashing(argv, timeout, env=None):
        if argv[0].endswith("nvidia-smi"):
            return ready_runner(argv, timeout, env)
        started = [{"step": "torch", "started": True}, {"step": "torch", "ok": True}, {"step": "torchvision", "started": True},
                   {"step": "torchvision", "ok": True}, {"step": "detectron2", "started": True}]
        return CommandResult(-11, "\n".join(json.dumps(line) for line in started), "Segmentation fault")

    monkeypatch.setattr(preflight, "run_command", crashing)
    code, report = doctor(cfg)
    assert code == EXIT_NOT_READY
    assert "[FAIL] import detectron2: the import crashed the process (exit -11)" in report
    assert "[FAIL] import phalp: not reached" in report and "[  ok] import torch" in report


def test_pinned_sizes_and_checksums_are_verified(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    write_model_files(load_manifest(cfg.backend.phalp).required("maskrcnn"))
    good = load_manifest(cfg.backend.phalp).required("maskrcnn")[0].path
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    manifest = textwrap.dedent(
        f"""
        files:
          - {{key: good, root: phalp_cache_dir, path: 3D/mean_std.npy, urls: [https://x.invalid/a], bytes: {good.stat().st_size}, sha256: "{digest}"}}
          - {{key: short, root: phalp_cache_dir, path: 3D/texture.npz, urls: [https://x.invalid/b], bytes: 999999}}
          - {{key: tampered, root: phalp_cache_dir, path: 3D/SMPL_to_J19.pkl, urls: [https://x.invalid/c], sha256: "{"0" * 64}"}}
        smpl: {{key: smpl_neutral, config_key: backend.phalp.smpl_path, how_to_get: register}}
        """
    )
    cfg, _ = _ready_machine(tmp_path, monkeypatch, manifest)
    code, report = doctor(cfg)
    assert code == EXIT_NOT_READY
    assert "[  ok] model file good:" in report and "sha256 verified" in report
    assert "[FAIL] model file short:" in report and "expected 999999 (truncated?)" in report
    assert "[FAIL] model file tampered:" in report and "delete it and run scripts/fetch-models.sh" in report


@pytest.mark.parametrize("detector", ["maskrcnn", "vitdet"])
def test_low_free_vram_is_a_warning_with_the_detector_advice(tmp_path, monkeypatch, detector):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    cfg.backend.phalp.detector = detector
    write_model_files(load_manifest(cfg.backend.phalp).required(detector))
    _, report = doctor(cfg)
    line = next(line for line in report.splitlines() if "free GPU memory" in line)
    assert ("[warn]" in line) == (detector == "vitdet")  # 7.2 GiB free


def test_an_unquoted_numeric_checksum_in_the_model_list_is_a_config_error_naming_the_file(tmp_path):
    manifest = tmp_path / "models.yaml"
    manifest.write_text(
        "files:\n  - {key: x, root: phalp_cache_dir, path: a, urls: [https://x.invalid/a], sha256: 1234}\n"
        "smpl: {key: smpl_neutral, config_key: backend.phalp.smpl_path, how_to_get: register}\n"
    )
    cfg = config(tmp_path, "backend.name=phalp", f"backend.phalp.models_manifest={manifest}")
    code, report = doctor(cfg)
    assert code == EXIT_NOT_READY and "[FAIL] model list:" in report and "sha256 must be 64 lower-case hex digits in quotes" in report


# --- host memory: the WSL VM against the expected load peak ---------------------------------------


def memory_line(report: str) -> list[str]:
    lines = report.splitlines()
    # The check's own line, not the verdict (first and last line), which names failed checks too.
    index = next(i for i, line in enumerate(lines) if line.startswith("  [") and "host memory for loading the models" in line)
    return lines[index : index + 2]


def test_an_8_gb_vm_with_little_available_is_warned_with_the_wslconfig_fix(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    wslconfig = "# written by hand\n[wsl2]\nmemory=8GB   # the seeds' VM\nswap=0\nprocessors=8\n"
    code, report = doctor(cfg, host_files(tmp_path, total_gib=7.7, available_gib=3.1, wslconfig=wslconfig))
    line, fix = memory_line(report)
    assert line.startswith("  [warn] host memory for loading the models: 7.7 GiB in this VM, 3.1 GiB available")
    assert "alex/.wslconfig: memory=8.0 GiB, swap=0.0 GiB" in line and "more than is available now" in line
    assert "[wsl2] memory=" in fix and "wsl --shutdown" in fix and str(tmp_path / "mnt-c-Users" / "alex" / ".wslconfig") in fix
    assert code == EXIT_READY  # a warning: loading may still succeed once other programs close


def test_a_vm_too_small_for_what_cannot_be_reclaimed_is_not_ready(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    cfg.backend.phalp.detector = "vitdet"
    write_model_files(load_manifest(cfg.backend.phalp).required("vitdet"))
    code, report = doctor(cfg, host_files(tmp_path, total_gib=3.0, available_gib=2.5, swap_gib=0.0))
    line, fix = memory_line(report)
    assert line.startswith("  [FAIL] host memory for loading the models") and "cannot fit in this VM" in line
    assert "detector=vitdet" in line and "%UserProfile%\\.wslconfig" in fix  # no .wslconfig found: say where it goes
    assert code == EXIT_NOT_READY


def test_torch_older_than_2_1_reads_checkpoints_whole_and_needs_more(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    host = host_files(tmp_path, total_gib=15.5, available_gib=14.0)
    _, with_mmap = doctor(cfg, host)
    ready_runner = preflight.run_command

    def old_torch(argv, timeout, env=None):
        result = ready_runner(argv, timeout, env)
        return CommandResult(result.returncode, result.stdout.replace("2.11.0+cu128", "2.0.1+cu118"), result.stderr)

    monkeypatch.setattr(preflight, "run_command", old_torch)
    _, without_mmap = doctor(cfg, host)
    assert "checkpoints memory-mapped" in memory_line(with_mmap)[0]
    assert "torch < 2.1 reads checkpoints whole" in memory_line(without_mmap)[0]


def test_a_wslconfig_without_a_memory_setting_reports_wsls_default(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    _, report = doctor(cfg, host_files(tmp_path, total_gib=15.5, available_gib=14.0, wslconfig="[wsl2]\r\nguiApplications=false\r\n"))
    assert "memory=not set (half of the PC's RAM), swap=not set" in memory_line(report)[0]


def test_outside_wsl_the_fix_does_not_talk_about_wslconfig(tmp_path, monkeypatch):
    cfg, _ = _ready_machine(tmp_path, monkeypatch)
    meminfo = write_meminfo(tmp_path / "meminfo", total_gib=7.7, available_gib=3.1)
    _, report = doctor(cfg, HostFiles(meminfo=meminfo, windows_users=tmp_path / "no-windows-drive"))
    line, fix = memory_line(report)
    assert line.startswith("  [warn] host memory for loading the models") and "wslconfig" not in line + fix
    assert "add swap" in fix
