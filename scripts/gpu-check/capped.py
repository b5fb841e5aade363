"""``capped.py GIB ARGS...``: run ``posed ARGS...`` with this process's CUDA allocator capped.

Stands in for a smaller card (7 GiB for an 8 GB RTX 4060: its CUDA context and the desktop take
the rest). ``torch.cuda.set_per_process_memory_fraction`` makes allocations past the cap raise
an out-of-memory error exactly as a full card would; the bench runs the backend in this process.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    import torch

    cap_gib, argv = float(sys.argv[1]), sys.argv[2:]
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * 2**30 / total), 0)
    from daemon.cli import main as posed

    return posed(argv)


if __name__ == "__main__":
    sys.exit(main())
