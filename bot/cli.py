"""`aurora-restore`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from runbook.engine import Refused as RefusedError


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


def _data_dir() -> Path:
    env = os.environ.get("AURORA_RESTORE_DATA")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local/state")
    return Path(state) / "aurora-restore"


def _console(args: argparse.Namespace) -> int:
    from bot.console import run_console
    from bot.redis_server import redis_url_from_env
    from runbook.clusters import ClusterFileError, load_clusters

    try:
        clusters = load_clusters(args.cluster)
    except ClusterFileError as exc:
        print(f"aurora-restore console: error: {exc}", file=sys.stderr)
        return 2
    if args.name is None and len(clusters) != 1:
        print(
            f"aurora-restore console: error: {args.cluster} has several clusters "
            f"({', '.join(clusters)}); choose one with --name",
            file=sys.stderr,
        )
        return 2
    name = args.name or next(iter(clusters))
    if name not in clusters:
        print(
            f"aurora-restore console: error: no cluster {name!r} in {args.cluster} "
            f"(known: {', '.join(clusters)})",
            file=sys.stderr,
        )
        return 2
    url, server = redis_url_from_env(_data_dir())
    try:
        _rid, status = asyncio.run(
            run_console(
                clusters[name],
                url,
                me=args.as_,
                yes=args.yes,
                backup=args.backup,
                out_dir=Path(args.out) if args.out else None,
            )
        )
    except RefusedError as exc:
        print(f"aurora-restore console: refused: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
    return 0 if status == "succeeded" else 1


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(
        yes=args.yes,
        out=Path(args.out) if args.out else None,
        schedulers=args.schedulers,
        me=args.as_,
    )


def _slack(args: argparse.Namespace) -> int:
    import logging

    from bot import settings as settings_mod
    from bot.redis_server import redis_url_from_env

    socket_mode = args.command == "socket"
    try:
        settings = settings_mod.load(socket_mode=socket_mode)
    except settings_mod.SettingsError as exc:
        print(f"aurora-restore {args.command}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from bot import slack_app

    url, server = redis_url_from_env(settings.data_dir)
    try:
        if socket_mode:
            asyncio.run(slack_app.socket_mode(settings, url))
        else:
            asyncio.run(slack_app.serve(settings, url))
    finally:
        if server is not None:
            server.stop()
    return 0


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

    co = sub.add_parser(
        "console",
        help="walk a restore in the terminal",
        description="Start a restore of the cluster in FILE, or continue the one running there.",
    )
    co.add_argument("--cluster", required=True, metavar="FILE", help="the cluster file")
    co.add_argument("--name", help="which cluster of the file (when it has several)")
    co.add_argument(
        "--backup", metavar="ID", help="scheduler-backup-yyyy-MM-dd-HH-mm; default: the newest"
    )
    co.add_argument(
        "--as",
        dest="as_",
        default=os.environ.get("USER", "operator"),
        metavar="NAME",
        help="who you are (one of the cluster's console approvers)",
    )
    co.add_argument(
        "--yes", action="store_true", help="approve everything as the console approvers"
    )
    co.add_argument("--out", metavar="DIR", help="write transcript.md and transcript.json there")
    co.set_defaults(func=_console)

    de = sub.add_parser(
        "demo",
        help="start the sandbox and the embedded store, and walk a whole restore",
    )
    de.add_argument("--yes", action="store_true", help="run unattended to the end")
    de.add_argument(
        "--out", metavar="DIR", help="write the transcripts (and keep the sandbox) there"
    )
    de.add_argument("--schedulers", type=int, default=3, metavar="N")
    de.add_argument("--as", dest="as_", default="alice", metavar="NAME")
    de.set_defaults(func=_demo)

    se = sub.add_parser(
        "serve", help="run the Slack app in HTTP mode (POST /slack/events, GET /healthz)"
    )
    se.set_defaults(func=_slack)
    so = sub.add_parser("socket", help="run the Slack app in Socket Mode (no public URL needed)")
    so.set_defaults(func=_slack)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
