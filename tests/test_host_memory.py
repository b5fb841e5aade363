"""Reading a VM's memory and a Windows .wslconfig from real files (daemon/backends/phalp/host_memory.py)."""

from __future__ import annotations

import pytest

from daemon.processing.backends.phalp.host_memory import GIB, parse_size, read_meminfo, read_wslconfig, torch_memory_maps


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8GB", 8 * GIB), ("4096MB", 4 * GIB), ("16gb", 16 * GIB), ("0", 0), ("1.5GB", int(1.5 * GIB)), ('"12GB"', 12 * GIB), ("lots", None)],
)
def test_wslconfig_sizes(text, expected):
    assert parse_size(text) == expected


def test_this_machines_own_meminfo_is_read():
    info = read_meminfo(__import__("pathlib").Path("/proc/meminfo"))
    assert 0 < info.available <= info.total


def test_a_wslconfig_with_a_bom_crlf_comments_and_other_sections(tmp_path):
    path = tmp_path / ".wslconfig"
    path.write_bytes("\ufeff[experimental]\r\nautoMemoryReclaim=gradual\r\n[wsl2]\r\nmemory=12GB ; more for the models\r\nswap=4GB\r\n".encode())
    config = read_wslconfig(path)
    assert (config.memory, config.swap) == (12 * GIB, 4 * GIB)


def test_an_unreadable_wslconfig_means_wsls_defaults(tmp_path):
    path = tmp_path / ".wslconfig"
    path.write_text("memory=8GB without a section\n")
    assert (read_wslconfig(path).memory, read_wslconfig(path).swap) == (None, None)


@pytest.mark.parametrize(("version", "maps"), [("2.0.1+cu118", False), ("2.1.2+cu118", True), ("2.13.0+cpu", True), ("1.13.1", False), (None, True)])
def test_which_torch_memory_maps_checkpoints(version, maps):
    assert torch_memory_maps(version) is maps
