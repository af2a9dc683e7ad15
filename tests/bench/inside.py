"""Benchmarks run their delegate cycles inside a throwaway node netns: `rerun_inside`
makes the namespaces, re-executes the module there with `--inner`, and removes them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def rerun_inside(module: str, node: str, pod: str, args: list[str]) -> None:
    for ns in (node, pod):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    try:
        subprocess.run(["ip", "netns", "add", node], check=True)
        subprocess.run(["ip", "netns", "add", pod], check=True)
        cmd = ["ip", "netns", "exec", node, sys.executable, "-m", module, "--inner", *args]
        subprocess.run(cmd, check=True, cwd=REPO)
    finally:
        for ns in (pod, node):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
