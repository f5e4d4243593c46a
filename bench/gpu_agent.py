"""``fleetgauge`` with the tests' fake NVML in place of ``pynvml``: a machine with GPUs.

``python bench/gpu_agent.py GPUS agent [FLAGS...]`` runs the agent as ``fleetgauge
agent [FLAGS...]`` would, its GPU collector reading ``GPUS`` fake GPUs shaped like
nvidia-ml-py's calls and errors (``tests/collectors/fake_nvml.py``): the first a busy,
throttled H100 with ECC errors and a row remap pending, every second one partitioned
into two MIG instances, as in the GPU agent test. The fake answers from Python, so
its own CPU counts against the agent (a real NVML spends it in the driver instead).
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def install_fake_nvml(gpus: int) -> None:
    """Put a fake NVML of ``gpus`` GPUs where the agent imports ``pynvml`` from."""
    sys.path.insert(0, str(TESTS))
    try:
        from collectors.fake_nvml import GIB, FakeGpu, FakeMig, FakeNvml, throttled_h100
    finally:
        sys.path.remove(str(TESTS))
    made = []
    for i in range(gpus):
        if i % 2:
            gpu = FakeGpu(
                f"GPU-{i:08d}-mig",
                pci_bus_id=f"00000000:{0x18 + i:02X}:00.0",
                mig=[FakeMig(1, 0, 20 * GIB, 5 * GIB), FakeMig(2, 0, 40 * GIB)],
            )
        else:
            gpu = throttled_h100()
            gpu.uuid, gpu.pci_bus_id = f"GPU-{i:08d}-h100", f"00000000:{0x18 + i:02X}:00.0"
        made.append(gpu)
    sys.modules["pynvml"] = FakeNvml(made)  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    """Install the fake, then run the command line ``argv[1:]``."""
    install_fake_nvml(int(argv[0]))
    from fleetgauge.cli import main as cli

    return cli(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
