"""Where a record came from: versions, commit, machine and accelerator."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2obench import __version__


@functools.cache
def git_commit() -> str | None:
    """The commit of the l2obench checkout in use (``+dirty`` if modified), if it is one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "") if commit else None


@functools.cache
def cpu_model() -> str:
    """The CPU's model name as the OS reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The accelerator's name, or the CPU's model on CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def provenance(device: torch.device) -> dict[str, Any]:
    """The provenance columns of a record."""
    return {
        "l2obench_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
    }
