"""`python -m sandbox --dir DIR [...]`: the sandbox alone, with every option of
`sandbox.cluster.Options`. The options are defined here once (`add_options`, `options`)
and `aurora-restore sandbox` (bot/cli.py) uses the same two functions: same options,
same output, same exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only layout at import: bot/cli.py builds its parser from add_options for every
# command, and must not pay for the sandbox's own imports (asyncssh, aiohttp).
from sandbox.layout import ADVERTISE, AURORA_VERSIONS, FLAVOURS

if TYPE_CHECKING:
    from sandbox.cluster import Options


def add_options(p: argparse.ArgumentParser) -> None:
    """Every option of the sandbox, on `p` (this module's parser and bot/cli.py's)."""
    p.add_argument("--dir", required=True, help="the sandbox's directory (created if missing)")
    p.add_argument("--schedulers", type=int, default=3, metavar="N", help="default: 3")
    p.add_argument("--backups", type=int, default=5, metavar="K", help="default: 5")
    p.add_argument("--zk", metavar="HOST:PORT", help="run the election and serverset in ZooKeeper")
    p.add_argument("--corrupt-log", action="store_true", help="start with a corrupt replicated log")
    p.add_argument(
        "--port-base",
        type=int,
        default=0,
        metavar="PORT",
        help="SSH on PORT.., HTTP on PORT+N.., libprocess (0.22) on PORT+2N..; default: free ports",
    )
    p.add_argument("--reset", action="store_true", help="discard a sandbox already in DIR")
    p.add_argument(
        "--restart-sec",
        type=float,
        default=2.0,
        metavar="S",
        help="the unit's RestartSec (real packages: 20); default: 2",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the generated tasks")
    p.add_argument(
        "--aurora-version",
        choices=AURORA_VERSIONS,
        default="0.17",
        help="the Aurora release the hosts behave as: 0.17 (online recovery only) or 0.22 "
        "(also recovery-tool, /metrics/snapshot on LIBPROCESS_PORT); default: 0.17",
    )
    p.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default="debian",
        help="the packaging the hosts mirror: debian (/etc/default, EXTRA_SCHEDULER_ARGS, "
        "aurora-admin) or rpm (/etc/sysconfig, AURORA_FLAGS, aurora_admin); default: debian",
    )
    p.add_argument(
        "--advertise",
        choices=ADVERTISE,
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
        help="log to var/log/aurora/aurora-scheduler.log (named scheduler_log in the "
        "cluster file) instead of the journal",
    )
    p.add_argument(
        "--break",
        dest="break_",
        metavar="KIND[,KIND]",
        help="for drills: break what a restore needs, each on one host it names when ready: "
        "envfile, client, sudo, quorum, hostkey, backups (sandbox.cluster.BREAKS)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    add_options(p)
    return p


def options(args: argparse.Namespace) -> Options:
    from sandbox.cluster import Options

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
        breaks=tuple(b for b in (args.break_ or "").split(",") if b),
        aurora_version=args.aurora_version,
    )


def run_sandbox(args: argparse.Namespace, prog: str) -> int:
    """Run the sandbox the parsed `args` describe; a SandboxError is one line, exit 2."""
    from sandbox.cluster import SandboxError, run

    try:
        return asyncio.run(run(options(args)))
    except SandboxError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return run_sandbox(parser().parse_args(argv), "aurora-restore sandbox")


if __name__ == "__main__":
    sys.exit(main())
