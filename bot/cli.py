"""`aurora-restore`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox.cluster import Options, SandboxError, run

    opts = Options(
        dir=Path(args.dir),
        schedulers=args.schedulers,
        backups=args.backups,
        zk=args.zk or "",
        corrupt_log=args.corrupt_log,
        port_base=args.port_base,
        reset=args.reset,
        restart_sec=args.restart_sec,
        seed=args.seed,
    )
    try:
        return asyncio.run(run(opts))
    except SandboxError as exc:
        print(f"aurora-restore sandbox: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-restore",
        description="Walk a team through restoring an Apache Aurora scheduler from a backup.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sb = sub.add_parser(
        "sandbox",
        help="run a simulated Aurora cluster to rehearse and test restores on",
        description="Start N simulated scheduler hosts on 127.0.0.1 and run until "
        "SIGINT/SIGTERM. Writes DIR/clusters.toml and DIR/ssh_config.",
    )
    sb.add_argument("--dir", required=True, help="the sandbox's directory (created if missing)")
    sb.add_argument("--schedulers", type=int, default=3, metavar="N", help="default: 3")
    sb.add_argument("--backups", type=int, default=5, metavar="K", help="default: 5")
    sb.add_argument("--zk", metavar="HOST:PORT", help="run the election and serverset in ZooKeeper")
    sb.add_argument(
        "--corrupt-log", action="store_true", help="start with a corrupt replicated log"
    )
    sb.add_argument(
        "--port-base",
        type=int,
        default=0,
        metavar="PORT",
        help="SSH on PORT.., HTTP on PORT+N..; default: free ports",
    )
    sb.add_argument("--reset", action="store_true", help="discard a sandbox already in DIR")
    sb.add_argument(
        "--restart-sec",
        type=float,
        default=2.0,
        metavar="S",
        help="the unit's RestartSec (real packages: 20); default: 2",
    )
    sb.add_argument("--seed", type=int, default=None, help="seed for the generated tasks")
    sb.set_defaults(func=_sandbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
