"""Redaction throughput on hostile output: 1 MB of each adversarial input of
tests/test_redact.py (the one per pattern that would make a backtracking pattern go
quadratic), and 1 MB of realistic scheduler output (glog lines with the scheduler's
flags, /vars, `scheduler_print_recovery_tasks` rows for the sandbox's generated tasks).

    .venv/bin/python benchmarks/hostile_output.py [--limit 65536]

Prints MB/s per input (CPU time, best of 3) and the slowest. With `--limit N` it also
times `redact_capped(text, N)`, which is what storing one host's output costs when the
tail is capped before redaction. Target: every input above 1 MB/s (the reviewer's case,
60 KB of `a.a.a…`, took 25 s before). Prints figures; not a test.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook.redact import redact, redact_capped, register_secret  # noqa: E402
from sandbox.backups import generate_cluster_tasks  # noqa: E402
from tests.test_redact import HOSTILE, MB  # noqa: E402

LIMIT = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else 0


def scheduler_output(size: int = MB) -> str:
    """Lines like a scheduler host prints: its start-up flags, /vars, the staged tasks."""
    rng = random.Random(7)
    flags = (
        "-cluster_name=west -zk_endpoints=zk1:2181,zk2:2181,zk3:2181 "
        "-serverset_path=/aurora/scheduler -native_log_zk_group_path=/aurora/replicated-log "
        "-native_log_file_path=/var/lib/aurora/scheduler/db -backup_dir=/var/lib/aurora/backups "
        "-http_authentication_mechanism=BASIC -mesos_master_address=zk://zk1:2181/mesos "
        "-thermos_executor_path=/usr/bin/thermos_executor -http_port=8081"
    )
    head = [
        f"I1201 22:22:06.123 [main] SchedulerMain: Starting scheduler with {flags}",
        "I1201 22:22:07.456 [main] SchedulerLifecycle: Elected as leading scheduler!",
        "task_store_RUNNING 283",
        "task_store_PENDING 9",
        "scheduler_lifecycle_ACTIVE 1",
        "scheduler-backup-2026-11-30-14-05",
        " INFO] Role\tJob\tShard\tStatus\tTask ID",
    ]
    lines = list(head)
    total = sum(len(x) + 1 for x in lines)
    while total < size:
        for t in generate_cluster_tasks(rng, 500):
            row = f" INFO] {t.role}\t{t.environment}/{t.job}\t{t.instance}\t{t.status}\t{t.task_id}"
            lines.append(row)
            total += len(row) + 1
            if total >= size:
                break
    return ("\n".join(lines) + "\n")[:size]


def best_of(work: Callable[[str], object], text: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        work(text)
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    register_secret("registered-secret-value")  # the literal rule runs too
    inputs = {**HOSTILE, "REALISTIC scheduler output": scheduler_output()}
    rows: list[tuple[str, float, float | None]] = []
    for name, text in inputs.items():
        mb = len(text.encode()) / 1e6
        full = mb / max(best_of(redact, text), 1e-9)
        capped = None
        if LIMIT:
            capped_s = best_of(lambda t: redact_capped(t, LIMIT), text)
            capped = capped_s * 1000
        rows.append((name, full, capped))
    width = max(len(n) for n, _, _ in rows)
    header = f"{'input (1 MB)':<{width}}  redact MB/s"
    if LIMIT:
        header += f"  redact_capped({LIMIT}) ms"
    print(header)
    for name, full, capped in rows:
        line = f"{name:<{width}}  {full:11.1f}"
        if capped is not None:
            line += f"  {capped:10.2f}"
        print(line)
    slowest = min(rows[:-1], key=lambda r: r[1])
    print(f"slowest hostile input: {slowest[0]} at {slowest[1]:.1f} MB/s")
    print(f"realistic output: {rows[-1][1]:.1f} MB/s")


if __name__ == "__main__":
    main()
