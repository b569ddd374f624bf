"""Run a command and measure it: wall, CPU, peak memory of its process tree, per-stage times.

A stage is a process whose command line holds ``pixelpipe run STAGE`` (what ``dvc.yaml``
calls), with all its descendants (the worker pool). The tree is sampled every
``interval`` seconds with psutil; the CPU total comes from ``getrusage(RUSAGE_CHILDREN)``
(exact for everything that was waited for), the per-stage CPU from the samples (the last
CPU time seen of each process, so a process that lives less than one interval is missed).
Output lines are timestamped as they arrive, so the time between log lines shows where a
stage spends its time (start-up, work, writing and tracking).
"""

from __future__ import annotations

import re
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

STAGE_CMD = re.compile(r"pixelpipe run (\S+)")
DONE = re.compile(r"^pixelpipe\.(\S+): (.+): (\d+)/(\d+) done in ([\d.]+)s$")
CACHE = re.compile(
    r"^pixelpipe\.\S+: (\S+): (\S+): (\d+) reused from the item cache, (\d+) computed"
)
RUNNING = re.compile(r"^pixelpipe\.(\S+): running ")
SUMMARY = re.compile(r"^pixelpipe\.(\S+): \S+: (\d+) samples, (\d+) removed")
DVC_RAN = re.compile(r"^Running stage '([^']+)'")
DVC_SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")


@dataclass
class _Proc:
    stage: str | None
    first: float
    last: float
    cpu: float = 0.0
    peak_rss: int = 0


@dataclass
class Watched:
    """What one command did."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss: int
    lines: list[tuple[float, str]]
    procs: dict[tuple[int, float], _Proc] = field(default_factory=dict)
    stage_peak_rss: dict[str, int] = field(default_factory=dict)

    def tail(self, count: int = 25) -> list[str]:
        """The last output lines (for a failure)."""
        return [line for _, line in self.lines[-count:]]

    def stages(self) -> dict[str, dict[str, Any]]:
        """Per stage: wall and CPU seconds, peak memory, phases, progress and cache lines."""
        out: dict[str, dict[str, Any]] = {}
        for proc in self.procs.values():
            if proc.stage is None:
                continue
            entry = out.setdefault(proc.stage, {"start": proc.first, "end": proc.last, "cpu": 0.0})
            entry["start"] = min(entry["start"], proc.first)
            entry["end"] = max(entry["end"], proc.last)
            entry["cpu"] += proc.cpu
        stages: dict[str, dict[str, Any]] = {}
        for name, entry in sorted(out.items(), key=lambda kv: float(kv[1]["start"])):
            running = self._first(RUNNING, name)
            summary = self._first(SUMMARY, name)
            before_summary = self._before(summary)
            stages[name] = {
                "wall_s": round(entry["end"] - entry["start"], 2),
                "cpu_s": round(entry["cpu"], 2),
                "peak_rss_mb": round(self.stage_peak_rss.get(name, 0) / 2**20, 1),
                "startup_s": _diff(running, entry["start"]),
                "work_s": _diff(before_summary, running),
                "tail_s": _diff(summary, before_summary),
                "exit_s": _diff(entry["end"], summary),
                "steps_s": {
                    m.group(2): float(m.group(5))
                    for _, line in self.lines
                    if (m := DONE.match(line)) and m.group(1) == name
                },
                "item_cache": {
                    m.group(2): {"reused": int(m.group(3)), "computed": int(m.group(4))}
                    for _, line in self.lines
                    if (m := CACHE.match(line)) and m.group(1) == name
                },
            }
        return stages

    def dvc_stages(self) -> dict[str, list[str]]:
        """The stages DVC ran and the ones it skipped as unchanged."""
        return {
            "ran": [m.group(1) for _, line in self.lines if (m := DVC_RAN.match(line))],
            "skipped": [m.group(1) for _, line in self.lines if (m := DVC_SKIPPED.match(line))],
        }

    def _first(self, pattern: re.Pattern[str], stage: str) -> float | None:
        for at, line in self.lines:
            m = pattern.match(line)
            if m and m.group(1) == stage:
                return at
        return None

    def _before(self, at: float | None) -> float | None:
        """The time of the output line just before the one at ``at``."""
        if at is None:
            return None
        earlier = [t for t, _ in self.lines if t < at]
        return earlier[-1] if earlier else None


def _diff(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 2)


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sample(
    root: psutil.Process, procs: dict[tuple[int, float], _Proc], started: float, epoch: float
) -> dict[str, int]:
    """One sample of the tree: updates ``procs``; returns RSS by stage (``""``: the rest)."""
    now = time.perf_counter() - started
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    current: dict[int, _Proc] = {}
    for proc in tree:
        try:
            with proc.oneshot():
                ppid, size, cpu = proc.ppid(), proc.memory_info().rss, proc.cpu_times()
                key = (proc.pid, proc.create_time())  # a reused pid is another process
                known = procs.get(key)
                if known is None:
                    known = procs[key] = _Proc(None, max(0.0, key[1] - epoch), now)
                if known.stage is None:  # again each time: a process may be exec-ing
                    match = STAGE_CMD.search(" ".join(proc.cmdline()))
                    known.stage = match.group(1) if match else None
        except psutil.Error:
            continue  # gone meanwhile
        parents[proc.pid], rss[proc.pid], current[proc.pid] = ppid, size, known
        known.last = now
        known.cpu = cpu.user + cpu.system
        known.peak_rss = max(known.peak_rss, size)
    by_stage: dict[str, int] = {}
    for pid, size in rss.items():
        stage, cursor = None, pid
        while cursor in parents and stage is None:
            stage = current[cursor].stage
            cursor = parents[cursor]
        if stage is not None and current[pid].stage is None:
            current[pid].stage = stage  # a worker of that stage
        by_stage[stage or ""] = by_stage.get(stage or "", 0) + size
    return by_stage


def watch(cmd: list[str], cwd: Path, env: dict[str, str], interval: float = 0.1) -> Watched:
    """Run ``cmd`` to the end, sampling its process tree every ``interval`` seconds."""
    cpu_before = _cpu_children()
    epoch, started = time.time(), time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    procs: dict[tuple[int, float], _Proc] = {}
    peak, stage_peak = 0, dict[str, int]()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        by_stage = _sample(root, procs, started, epoch)
        peak = max(peak, sum(by_stage.values()))
        for stage, size in by_stage.items():
            stage_peak[stage] = max(stage_peak.get(stage, 0), size)
        time.sleep(interval)
    returncode = proc.wait()
    wall = time.perf_counter() - started
    reader.join()
    return Watched(
        returncode=returncode,
        wall_s=wall,
        cpu_s=_cpu_children() - cpu_before,
        peak_rss=peak,
        lines=lines,
        procs=procs,
        stage_peak_rss=stage_peak,
    )
