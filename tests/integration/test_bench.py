"""``lifenet bench`` on tiny worlds: every figure, ratio and target lands in the JSON, and
no child process outlives the run; and the real ``--quick`` run, whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import main
from server.tools.bench import TINY, expected_keys

pytestmark = pytest.mark.integration


def children() -> set[int]:
    """The pids of this process's children, from /proc."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.add(int(entry.name))
    return found


@pytest.mark.timeout(120)
def test_tiny_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    before = children()
    result = CliRunner().invoke(main, ["bench", "--tiny", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["figures"]) == set(expected_keys(TINY))
    for key, figure in report["figures"].items():
        assert figure["ms_per_generation"] > 0, key
        assert figure["cells"] == int(key.rsplit("/", 1)[1])
    assert not report["figures"]["io/serial/100"]["measured"]  # extrapolated
    assert report["figures"]["io/lifenet/900"]["measured"]
    # Per-cell I/O is honest: no generation beats one latency.
    assert all(report["figures"][k]["ms_per_generation"] >= TINY.latency * 1000
               for k in report["figures"] if k.startswith("io/"))
    assert {t["target"][:3] for t in report["targets"]} == {"io:", "cpu", "cur", "ver"}
    assert len(report["targets"]) == 12
    assert report["machine"]["cpus"] >= 1
    assert "lifenet" in result.output and "targets" in result.output
    assert children() <= before, "bench left child processes behind"


@pytest.mark.timeout(300)
def test_the_quick_bench_runs_whole_and_writes_every_figure(tmp_path: Path) -> None:
    """The issue's own command, as a child process: every figure of the quick profile
    (its duration, 26 to 37 s on a quiet 2-core machine, is in docs/benchmarks.md)."""
    import subprocess
    import sys

    from server.tools.bench import QUICK
    from tests.conftest import ROOT

    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, "-m", "server", "bench", "--quick", "--json",
                             str(out)], capture_output=True, text=True, timeout=280,
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["figures"]) == set(expected_keys(QUICK))
    assert all(f["ms_per_generation"] > 0 for f in report["figures"].values())
    assert len(report["targets"]) == 12 and report["wall_s"] > 0
