"""A Dask scheduler and workers started as separate processes, as on a real cluster.

The workers run in their own folder with a preload (:mod:`tests.support.no_project_disk`)
that refuses any file access under the project folder, the way a worker on another machine
cannot see it: the test proves pixelpipe sends workers URLs and bytes, never project paths.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shell import BIN

PRELOAD = Path(__file__).with_name("no_project_disk.py")
STARTUP_SECONDS = 120


def _wait_for_workers(
    scheduler_file: Path, count: int, processes: list[subprocess.Popen[bytes]]
) -> str:
    from distributed import Client

    deadline = time.monotonic() + STARTUP_SECONDS
    while not scheduler_file.exists():
        if time.monotonic() > deadline or processes[0].poll() is not None:
            raise RuntimeError("the Dask scheduler did not start")
        time.sleep(0.2)
    address = str(json.loads(scheduler_file.read_text())["address"])
    with Client(address, timeout=STARTUP_SECONDS) as client:  # type: ignore[no-untyped-call]
        client.wait_for_workers(count, timeout=STARTUP_SECONDS)
    return address


@contextmanager
def dask_cluster(
    workdir: Path, env: dict[str, str], forbidden: Path, workers: int = 2
) -> Iterator[tuple[str, Path]]:
    """Start ``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1.

    Args:
        workdir: The cluster's own folder (the workers' current directory and logs).
        env: The processes' environment (credentials and endpoint of the bucket).
        forbidden: The folder no worker may touch (the project).
        workers: How many worker processes.

    Yields:
        The scheduler's address and the folder with every process's log.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    scheduler_file = workdir / "scheduler.json"
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, args: list[str]) -> None:
        with (logs / f"{name}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    args,
                    cwd=workdir,
                    env={**env, "PIXELPIPE_TEST_FORBIDDEN": str(forbidden.resolve())},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )

    try:
        start(
            "scheduler",
            [
                str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                "--no-dashboard", "--scheduler-file", str(scheduler_file),
            ],
        )  # fmt: skip
        while not scheduler_file.exists() and processes[0].poll() is None:
            time.sleep(0.2)
        for index in range(workers):
            start(
                f"worker-{index}",
                [
                    str(BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file),
                    "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                    "--local-directory", str(workdir / f"worker-{index}"),
                    "--preload", str(PRELOAD),
                ],
            )  # fmt: skip
        yield _wait_for_workers(scheduler_file, workers, processes), logs
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
