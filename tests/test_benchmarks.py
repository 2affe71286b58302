"""The GPU benchmark runs end to end: its code is exercised here at a toy shape on the CPU, so that the
first machine with a GPU takes docs/performance.md's figures in one command (benchmarks/gpu_7b.py)."""

import subprocess
import sys

from conftest import ROOT


def test_gpu_benchmark_runs_at_a_toy_shape():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_7b.py"), "--shape", "tiny", "--device",
                             "cpu"], capture_output=True, text=True, check=True, timeout=600)
    summary = dict(item.split("=") for item in result.stdout.strip().splitlines()[-1].split()[1:])
    expected = {f"decode_{run}_tok_s_batch{b}" for run in ("eager", "compiled") for b in (1, 4)}
    expected |= {"clips_per_hour_batch1", "clips_per_hour_batch4", "mert_windows_s_bfloat16", "mert_windows_s_float32"}
    assert set(summary) == expected and all(float(v) > 0 for v in summary.values())
    assert "| run | batch | tok/s | ms per step | products alone ms | step / products | floor ms |" in result.stdout
    assert "read bandwidth" in result.stdout and "compiled the decoding step in" in result.stderr
