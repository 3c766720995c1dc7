"""How long one trivial command (`true`) takes on 1, 10 and 50 hosts.

Compares, over the same sandbox hosts:

* the executor, cold (a new `SshExecutor`: connecting included) and warm (its kept
  connections: what every step after the first costs);
* a sequential loop over the same warm executor (one host after another);
* Debian's `parallel-ssh` (package pssh), with the sandbox's ssh_config (a new OpenSSH
  connection per host per call).

Targets: warm on 50 hosts < 1.5x warm on 1 host, and the executor faster than pssh.

`true` measures pure overhead: a few milliseconds, most of it the SSH protocol work
per host (CPU, in Python, on both ends: the sandbox serves all hosts from one process
and spawns a bash per command). So the table also shows `sleep 0.5` on warm
connections, where the fan-out itself is what is measured.

    .venv/bin/python benchmarks/ssh_fanout.py [--repeat 5] [--dir DIR]

Prints figures; it is not a test. Starts `aurora-restore sandbox --schedulers 50` as
a child process and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.ssh import SshExecutor  # noqa: E402
from runbook.clusters import Cluster, load_clusters  # noqa: E402

SIZES = (1, 10, 50)


def start_sandbox(directory: Path, hosts: int, restart_sec: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "sandbox",
            "--dir",
            str(directory),
            "--schedulers",
            str(hosts),
            "--restart-sec",
            str(restart_sec),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("ready"):
            return proc
    stop_sandbox(proc)
    raise SystemExit("the sandbox did not become ready:\n" + "".join(seen))


def stop_sandbox(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def first(cluster: Cluster, n: int) -> Cluster:
    data = cluster.model_dump()
    data["schedulers"] = data["schedulers"][:n]
    return Cluster.model_validate(data)


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


def check(results: dict[str, object]) -> None:
    bad = {h: r for h, r in results.items() if not getattr(r, "ok", False)}
    if bad:
        raise SystemExit(f"failed: {bad}")


async def measure_sleep(cluster: Cluster, repeat: int, seconds: float = 0.5) -> float:
    """Median seconds for `sleep 0.5` on every host, warm connections."""
    commands = {s.host: f"sleep {seconds}" for s in cluster.schedulers}
    async with SshExecutor(cluster) as ssh:
        check(await ssh.run({h: "true" for h in commands}))
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            check(await ssh.run(commands))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


async def measure_executor(cluster: Cluster, repeat: int) -> tuple[float, float, float]:
    """(cold, warm median, sequential median) seconds for `true` on every host."""
    hosts = [s.host for s in cluster.schedulers]
    commands = {h: "true" for h in hosts}
    colds, warms, seqs = [], [], []
    for _ in range(repeat):
        async with SshExecutor(cluster) as ssh:
            started = time.perf_counter()
            check(await ssh.run(commands))
            colds.append(time.perf_counter() - started)
            for _ in range(3):
                started = time.perf_counter()
                check(await ssh.run(commands))
                warms.append(time.perf_counter() - started)
            started = time.perf_counter()
            for h in hosts:
                check(await ssh.run({h: "true"}))
            seqs.append(time.perf_counter() - started)
    return statistics.median(colds), statistics.median(warms), statistics.median(seqs)


def measure_pssh(directory: Path, hosts: list[str], repeat: int) -> float | None:
    binary = shutil.which("parallel-ssh")
    if binary is None:
        return None
    hosts_file = directory / f"pssh_hosts_{len(hosts)}"
    hosts_file.write_text("\n".join(hosts) + "\n")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        r = subprocess.run(
            [
                binary,
                "-h",
                str(hosts_file),
                "-p",
                str(len(hosts)),
                "-t",
                "60",
                "-x",
                f"-F {directory / 'ssh_config'}",
                "true",
            ],
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - started)
        if r.returncode != 0:
            raise SystemExit(f"parallel-ssh failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return statistics.median(times)


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--dir", type=Path, help="sandbox directory (default: a temp dir)")
    parser.add_argument(
        "--restart-sec",
        type=float,
        default=0.5,
        help="the sandbox's RestartSec; while the simulated scheduler crash-loops, a long "
        "one keeps 50 restarting units from loading the machine and the sandbox's loop",
    )
    args = parser.parse_args()

    tmp = None
    directory = args.dir
    if directory is None:
        tmp = tempfile.mkdtemp(prefix="ssh-fanout-")
        directory = Path(tmp) / "sandbox"
    print(f"starting a sandbox of {max(SIZES)} hosts in {directory} ...", flush=True)
    proc = start_sandbox(directory, max(SIZES), args.restart_sec)
    try:
        cluster = load_clusters(directory / "clusters.toml")["sandbox"]
        rows = []
        for n in SIZES:
            sub = first(cluster, n)
            cold, warm, seq = asyncio.run(measure_executor(sub, args.repeat))
            slept = asyncio.run(measure_sleep(sub, 3))
            pssh = measure_pssh(directory, [s.host for s in sub.schedulers], args.repeat)
            rows.append((n, cold, warm, seq, pssh, slept))
    finally:
        stop_sandbox(proc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"`true` on N sandbox hosts, median of {args.repeat} runs, milliseconds "
        f"(sandbox --restart-sec {args.restart_sec:g})"
    )
    print(
        f"{'hosts':>5}  {'cold':>8}  {'warm':>8}  {'sequential':>10}  {'pssh':>8}"
        f"  {'sleep 0.5 warm':>14}"
    )
    for n, cold, warm, seq, pssh, slept in rows:
        print(f"{n:>5}  {ms(cold)}  {ms(warm)}  {ms(seq):>10}  {ms(pssh)}  {ms(slept):>14}")
    print("cold: new executor (connect + run); warm: kept connections;")
    print("sequential: one host after another on the warm executor; pssh: parallel-ssh -p N;")
    print("sleep 0.5 warm: `sleep 0.5` on every host over kept connections (median of 3)")
    if rows[0][4] is None:
        print("note: parallel-ssh is not installed (apt-get install pssh): pssh column skipped")

    print()
    for label, column in (("`true`", 2), ("`sleep 0.5`", 5)):
        ratio = rows[-1][column] / rows[0][column]  # type: ignore[operator]
        print(
            f"target warm {max(SIZES)} hosts < 1.5x warm 1 host, {label}: {ratio:.2f}x "
            f"-> {'HOLDS' if ratio < 1.5 else 'MISSED'}"
        )
    for n, cold, warm, _seq, pssh, _slept in rows:
        if pssh is not None:
            print(
                f"target faster than pssh on {n:>2} hosts: cold {pssh / cold:5.1f}x, "
                f"warm {pssh / warm:6.1f}x faster -> {'HOLDS' if cold < pssh else 'MISSED'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
