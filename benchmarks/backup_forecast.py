"""Benchmark: read a backup of 100,000 tasks from a local file, decode it, list 100,000
running tasks from a Mesos master (the sandbox's master code, in-process, over HTTP) and
forecast the kills. Prints seconds and peak memory against the backup's size.

Targets (issue 12): the whole read+decode+forecast under 5 s; the decode's peak memory
(tracemalloc) a small multiple of the backup's size.

    .venv/bin/python benchmarks/backup_forecast.py [--tasks 100000] [--page 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from bot.mesos import PAGE, running_tasks
from runbook.forecast import forecast
from runbook.snapshot import decode_file
from sandbox.backups import Task, encode_snapshot
from sandbox.mesos_master import MesosMaster, TaskSource

FW = "5f1c0a6e-3b7d-5c2e-9a4f-1d2e3f4a5b6c-0000"


def make_tasks(n: int, rng: random.Random) -> list[Task]:
    roles = ["www-data", "ads", "search", "payments", "mesos"]
    out = []
    for i in range(n):
        role = roles[i % len(roles)]
        job = f"job{i % 211}"
        status = "RUNNING" if i % 10 else rng.choice(["FINISHED", "PENDING", "FAILED"])
        out.append(Task.new(role, "prod", job, i % 500, status, rng))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--page", type=int, default=PAGE)
    args = ap.parse_args()
    rng = random.Random(12)
    tasks = make_tasks(args.tasks, rng)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        backup = d / "scheduler-backup-2026-12-01-10-00"
        backup.write_bytes(encode_snapshot(tasks, datetime.now(UTC), FW))
        size = backup.stat().st_size
        # Mesos runs the backup's active tasks but 2% of them, plus new ones.
        running = [t for t in tasks if t.status == "RUNNING" and rng.random() > 0.02]
        while len(running) < args.tasks:
            running.append(Task.new("new", "prod", f"svc{len(running) % 13}", 0, "RUNNING", rng))
        (d / "tasks.json").write_text(json.dumps([t.__dict__ for t in running]))
        (d / "killed.jsonl").write_text("")
        del tasks
        master = MesosMaster(TaskSource(d / "tasks.json", d / "killed.jsonl", FW))
        url = await master.start()
        try:
            # Memory first, in a pass of its own: tracemalloc slows decoding down ~10x.
            tracemalloc.start()
            decode_file(backup)
            decode_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            t0 = time.perf_counter()
            info = decode_file(backup)
            t1 = time.perf_counter()
            listed = await running_tasks(url, info.framework_id, 30.0, page=args.page)
            t2 = time.perf_counter()
            result = forecast(info, listed)
            t3 = time.perf_counter()
        finally:
            await master.close()
    total = t3 - t0
    print(f"backup: {len(info.tasks)} tasks, {size / 1e6:.1f} MB")
    print(
        f"decode: {t1 - t0:.2f} s, peak {decode_peak / 1e6:.1f} MB = {decode_peak / size:.2f}x the backup"
    )
    print(f"mesos:  {t2 - t1:.2f} s for {len(listed)} running tasks (page {args.page})")
    print(f"forecast: {t3 - t2:.2f} s: {result.summary()}")
    print(f"total (read+decode+list+forecast): {total:.2f} s (target < 5 s)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"process ru_maxrss: {rss / 1e6:.0f} MB (includes building the fixtures)")


if __name__ == "__main__":
    asyncio.run(main())
