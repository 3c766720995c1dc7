"""`python -m sandbox --dir DIR [...]`: the sandbox alone, with every option of
`sandbox.cluster.Options` (those `aurora-restore sandbox` has, and the packaged-host ones:
--flavour, --advertise, --tz, --log-file). Same output, same exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sandbox.cluster import Options, SandboxError, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    p.add_argument("--dir", required=True)
    p.add_argument("--schedulers", type=int, default=3, metavar="N")
    p.add_argument("--backups", type=int, default=5, metavar="K")
    p.add_argument("--zk", metavar="HOST:PORT")
    p.add_argument("--corrupt-log", action="store_true")
    p.add_argument("--port-base", type=int, default=0, metavar="PORT")
    p.add_argument("--reset", action="store_true")
    p.add_argument("--restart-sec", type=float, default=2.0, metavar="S")
    p.add_argument("--seed", type=int, default=None)
    # The packaged-host options (the same lines go into bot/cli.py).
    p.add_argument(
        "--flavour",
        choices=("debian", "rpm"),
        default="debian",
        help="the packaging the hosts mirror: debian (/etc/default, EXTRA_SCHEDULER_ARGS, "
        "aurora-admin) or rpm (/etc/sysconfig, AURORA_FLAGS, aurora_admin); default: debian",
    )
    p.add_argument(
        "--advertise",
        choices=("ip", "hostname"),
        default="ip",
        help="what the schedulers advertise in the election: their IP address (the "
        "packages' default) or -hostname=$(uname -n); default: ip",
    )
    p.add_argument(
        "--tz",
        default="",
        metavar="ZONE",
        help="an IANA time zone for every process of the hosts (backup names follow it); "
        "default: the machine's",
    )
    p.add_argument(
        "--log-file",
        action="store_true",
        help="log to var/log/aurora/aurora-scheduler.log (and name it scheduler_log in the "
        "cluster file) instead of the journal",
    )
    return p


def options(args: argparse.Namespace) -> Options:
    return Options(
        dir=Path(args.dir),
        schedulers=args.schedulers,
        backups=args.backups,
        zk=args.zk or "",
        corrupt_log=args.corrupt_log,
        port_base=args.port_base,
        reset=args.reset,
        restart_sec=args.restart_sec,
        seed=args.seed,
        flavour=args.flavour,
        advertise=args.advertise,
        tz=args.tz,
        log_file=args.log_file,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(options(args)))
    except SandboxError as exc:
        print(f"aurora-restore sandbox: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
