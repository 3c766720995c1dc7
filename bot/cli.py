"""`aurora-restore`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from runbook.engine import Refused as RefusedError
from sandbox.layout import AURORA_VERSIONS


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox.__main__ import run_sandbox

    return run_sandbox(args, "aurora-restore sandbox")


def _check(args: argparse.Namespace) -> int:
    """Restore readiness (bot.check): 0 all pass, 1 any fails, 2 a usage error."""
    from bot.check import check_cluster, write_reports
    from runbook.redact import redact

    if not _redaction(args, "check"):
        return 2
    args.cluster = _cluster_file(args, "check")
    if args.cluster is None:
        return 2
    cluster = _load_one(args, "check")
    if cluster is None:
        return 2
    try:
        rows = asyncio.run(check_cluster(cluster))
    except Exception as exc:  # one line, never a traceback
        print(
            f"aurora-restore check: error: {type(exc).__name__}: {redact(str(exc))}",
            file=sys.stderr,
        )
        return 1
    rows = [type(r)(r.name, r.host, r.ok, redact(r.cause)) for r in rows]
    for r in rows:
        print(r.line())
    failed = sum(not r.ok for r in rows)
    print(f"{len(rows) - failed} pass, {failed} fail")
    if args.out:
        write_reports(Path(args.out), cluster.name, rows)
    return 1 if failed else 0


def _settings(args: argparse.Namespace, command: str) -> Any:
    """The environment's settings, read once per run (bot.settings); None, with one line
    on stderr, when one is malformed."""
    from bot.settings import Settings, SettingsError

    if getattr(args, "settings", None) is None:
        try:
            args.settings = Settings.from_env()
        except SettingsError as exc:
            print(f"aurora-restore {command}: error: {exc}", file=sys.stderr)
            return None
    return args.settings


def _redaction(args: argparse.Namespace, command: str) -> bool:
    """Compile AURORA_RESTORE_REDACT and redact log records (the Slack commands do the
    first in bot.settings.load); False, with one line on stderr, for a bad pattern."""
    from bot.settings import SettingsError
    from runbook.redact import install_log_redaction

    settings = _settings(args, command)
    if settings is None:
        return False
    try:
        settings.apply_redaction()
    except SettingsError as exc:
        print(f"aurora-restore {command}: error: {exc}", file=sys.stderr)
        return False
    install_log_redaction()
    return True


def _console(args: argparse.Namespace) -> int:
    from bot.console import run_console
    from bot.wiring import store_url
    from runbook.clusters import ClusterFileError, load_clusters

    if not _redaction(args, "console"):
        return 2
    args.cluster = _cluster_file(args, "console")
    if args.cluster is None:
        return 2
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
    cluster = clusters[name]
    me = args.as_ or (cluster.approvers.console[0] if cluster.approvers.console else None)
    if me is None or me not in cluster.approvers.console:
        known = ", ".join(cluster.approvers.console) or "none (set approvers.console)"
        print(
            f"aurora-restore console: error: {me or 'nobody'} is not a console approver of "
            f"{name} (they are: {known})",
            file=sys.stderr,
        )
        return 2
    url, server = store_url(args.settings)
    try:
        _rid, status = asyncio.run(
            run_console(
                cluster,
                url,
                me=me,
                yes=args.yes,
                backup=args.backup,
                out_dir=Path(args.out) if args.out else None,
                settings=args.settings,
            )
        )
    except RefusedError as exc:
        print(f"aurora-restore console: refused: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt) as exc:
        # At a prompt: nothing was decided, the restore stays as it is (a step that was
        # running comes back `interrupted`, for a person to decide) and can be continued.
        why = "end of input" if isinstance(exc, EOFError) else "interrupted"
        print(flush=True)  # ends the prompt's line
        print(
            f"aurora-restore console: stopped ({why}); the restore stays as it is: "
            f"run the same command again to continue it",
            file=sys.stderr,
        )
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        if server is not None:
            server.stop()
    return 0 if status == "succeeded" else 1


def _cluster_file(args: argparse.Namespace, command: str) -> str | None:
    """`--cluster FILE`, else AURORA_RESTORE_CLUSTERS; None (one line said) without either."""
    settings = _settings(args, command)
    if settings is None:
        return None
    path: str | None = args.cluster or settings.clusters_path
    if not path:
        print(
            f"aurora-restore {command}: error: no cluster file: give --cluster FILE "
            f"or set AURORA_RESTORE_CLUSTERS",
            file=sys.stderr,
        )
        return None
    return path


def _load_one(args: argparse.Namespace, command: str) -> Any:
    from runbook.clusters import ClusterFileError, load_clusters

    try:
        clusters = load_clusters(args.cluster)
    except ClusterFileError as exc:
        print(f"aurora-restore {command}: error: {exc}", file=sys.stderr)
        return None
    name = args.name or (next(iter(clusters)) if len(clusters) == 1 else None)
    if name not in clusters:
        print(
            f"aurora-restore {command}: error: choose a cluster of {args.cluster} with --name "
            f"(known: {', '.join(clusters)})",
            file=sys.stderr,
        )
        return None
    return clusters[name]


def _put_back(args: argparse.Namespace) -> int:
    from bot.console import run_put_back
    from bot.wiring import store_url

    if not _redaction(args, "put-back"):
        return 2
    cluster = _load_one(args, "put-back")
    if cluster is None:
        return 2
    url, server = store_url(args.settings)
    try:
        result = asyncio.run(
            run_put_back(cluster, url, args.restore_id, me=args.as_, settings=args.settings)
        )
    except RefusedError as exc:
        print(f"aurora-restore put-back: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    print(f"restore {args.restore_id}: {result}; the old log is back and the schedulers run on it")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    if not _redaction(args, "demo"):
        return 2
    try:
        return run_demo(
            yes=args.yes,
            out=Path(args.out) if args.out else None,
            schedulers=args.schedulers,
            me=args.as_,
            settings=args.settings,
            aurora_version=args.aurora_version,
        )
    except EOFError:  # stdin closed at a prompt: the demo's sandbox goes with it
        print(flush=True)
        print("aurora-restore demo: stopped (end of input at a prompt)", file=sys.stderr)
        return 1


def _slack(args: argparse.Namespace) -> int:
    import logging

    from bot import settings as settings_mod
    from bot.wiring import store_url

    socket_mode = args.command == "socket"
    try:
        settings = settings_mod.load(socket_mode=socket_mode)
    except settings_mod.SettingsError as exc:
        print(f"aurora-restore {args.command}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from runbook.redact import install_log_redaction

    install_log_redaction()  # after basicConfig: it filters the root logger's handlers
    from bot import slack_app

    url, server = store_url(settings)
    problem = store_problem(url)
    if problem is not None:
        print(f"aurora-restore {args.command}: {problem}", file=sys.stderr)
        if server is not None:
            server.stop()
        return 2
    try:
        if socket_mode:
            asyncio.run(slack_app.socket_mode(settings, url))
        else:
            asyncio.run(slack_app.serve(settings, url))
    finally:
        if server is not None:
            server.stop()
    return 0


def store_problem(url: str, timeout: float = 5.0) -> str | None:
    """Why the store at `url` cannot be used, in one line (the host and port, never the
    password), or None when it answers PING."""
    import redis
    from redis.exceptions import RedisError

    from runbook.redact import redact

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        return f"REDIS_URL is not a Redis URL: {exc}"
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        return redact(f"the store at {where} is unreachable: {exc}")
    finally:
        client.close()
    return None


def _with_store(args: argparse.Namespace, work: Any) -> int:
    """Run `work(store)` against REDIS_URL or the embedded store."""
    from bot.wiring import open_store, store_url

    settings = _settings(args, args.command)
    if settings is None:
        return 2
    url, server = store_url(settings)

    async def main() -> int:
        async with open_store(url) as store:
            result: int = await work(store)
            return result

    try:
        return asyncio.run(main())
    finally:
        if server is not None and not server.reused:
            server.stop()


def render(doc: dict[str, Any], fmt: str) -> str:
    from runbook import transcript

    if fmt == "json":
        return transcript.to_json(doc)
    if fmt == "md":
        return transcript.to_markdown(doc)
    from runbook.transcript_html import to_html

    return to_html(doc)


def _export(args: argparse.Namespace) -> int:
    from runbook import transcript

    async def work(store: Any) -> int:
        rec = await store.load(args.restore_id)
        if rec is None:
            print(
                f"aurora-restore export: no restore {args.restore_id!r} (expired, or another store?)",
                file=sys.stderr,
            )
            return 2
        from runbook.procedures import PROCEDURES

        procedure = PROCEDURES.get(str(rec.meta.get("procedure") or "online"))
        if procedure is None:
            print(
                f"aurora-restore export: restore {args.restore_id!r} follows an unknown procedure {rec.meta.get('procedure')!r}",
                file=sys.stderr,
            )
            return 2
        doc = transcript.build(
            rec,
            await store.events(args.restore_id),
            await store.outputs(args.restore_id),
            procedure,
        )
        text = render(doc, args.format)
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0

    return _with_store(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(store: Any) -> int:
        print(f"{'restore':<14}{'cluster':<16}{'outcome':<11}{'started by':<16}started")
        for rid in await store.restore_ids(limit=args.limit):
            rec = await store.load(rid)
            if rec is None:
                continue  # expired
            import datetime as dt

            started = dt.datetime.fromtimestamp(rec.meta.get("started_at", 0) / 1000, dt.UTC)
            print(
                f"{rid:<14}{rec.meta['cluster']:<16}{rec.status:<11}{rec.meta.get('started_by_name', ''):<16}"
                f"{started.isoformat(timespec='seconds')}"
            )
        return 0

    return _with_store(args, work)


def _verify(args: argparse.Namespace) -> int:
    import json

    from runbook import transcript

    try:
        doc = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as exc:
        print(f"aurora-restore verify-transcript: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    live: list[str] | None = None
    if not args.offline:

        async def work(store: Any) -> int:
            nonlocal live
            events = await store.events(str(doc.get("restore", "")))
            live = [e["hash"] for e in events] or None
            return 0

        try:
            _with_store(args, work)
        except Exception as exc:  # the store is optional here
            print(f"(not checked against the store: {exc})", file=sys.stderr)
    from runbook.procedures import PROCEDURES

    problems = transcript.verify(doc, PROCEDURES, live)
    if problems:
        print(f"{len(problems)} problems in {args.file} ({transcript.chain_name(doc)}):")
        for p in problems:
            print(f"FAIL {p}")
        return 1
    where = (
        "the export and the event log kept in the store"
        if live
        else "the export (the restore is no longer kept)"
    )
    print(
        f"OK: {len(doc.get('log', []))} events, {transcript.chain_name(doc)}, chain digest "
        f"{doc.get('chain_digest')}, checked against {where}"
    )
    unchecked = transcript.not_vouched(doc, PROCEDURES)
    if unchecked:
        print(
            f"not vouched for by the log (learnt by steps, kept outside it): {', '.join(unchecked)}"
        )
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
    from sandbox.__main__ import add_options as add_sandbox_options

    add_sandbox_options(sb)  # the options are defined once, in sandbox/__main__.py
    sb.set_defaults(func=_sandbox)

    co = sub.add_parser(
        "console",
        help="walk a restore in the terminal",
        description="Start a restore of the cluster in FILE, or continue the one running there.",
    )
    co.add_argument(
        "--cluster",
        metavar="FILE",
        help="the cluster file; default: $AURORA_RESTORE_CLUSTERS",
    )
    co.add_argument("--name", help="which cluster of the file (when it has several)")
    co.add_argument(
        "--backup", metavar="ID", help="scheduler-backup-yyyy-MM-dd-HH-mm; default: the newest"
    )
    co.add_argument(
        "--as",
        dest="as_",
        default=None,
        metavar="NAME",
        help="who you are: one of the cluster's console approvers; default: the first",
    )
    co.add_argument(
        "--yes", action="store_true", help="approve everything as the console approvers"
    )
    co.add_argument(
        "--out",
        metavar="DIR",
        help="write transcript.md, transcript.json and transcript.html there",
    )
    co.set_defaults(func=_console)

    ck = sub.add_parser(
        "check",
        help="restore readiness: every read-only gate of the procedure, per check and host",
        description="Run the read-only half of the restore against the cluster: SSH and "
        "host keys, the env file and its edits, clusters.json, the tools, sudo, the dirs, "
        "room for the archive, the backups and the newest one decoded, the leader. "
        "Changes nothing, creates no restore, takes no lock, needs no Redis. Exits 0 when "
        "every check passes, 1 when any fails, 2 on a usage error.",
    )
    ck.add_argument(
        "--cluster", metavar="FILE", help="the cluster file; default: $AURORA_RESTORE_CLUSTERS"
    )
    ck.add_argument("--name", help="which cluster of the file (when it has several)")
    ck.add_argument(
        "--out", metavar="DIR", help="also write check.md, check.json and check.html there"
    )
    ck.set_defaults(func=_check)

    pb = sub.add_parser(
        "put-back",
        help="after an abort that followed the wipe: put the archived log back and revert",
        description="Put the log.archive tarballs back on every scheduler (sha256-checked), "
        "revert the files and start the schedulers with their normal flags on the old log.",
    )
    pb.add_argument("restore_id")
    pb.add_argument("--cluster", required=True, metavar="FILE", help="the cluster file")
    pb.add_argument("--name", help="which cluster of the file (when it has several)")
    pb.add_argument("--as", dest="as_", required=True, metavar="NAME", help="an approver")
    pb.set_defaults(func=_put_back)

    de = sub.add_parser(
        "demo",
        help="start the sandbox and the embedded store, and walk a whole restore",
        description="Start a sandbox and an embedded store of its own, and walk a whole "
        "restore of it in the console: at each step a approves, s skips, b aborts. Exits 0 "
        "only when the restore succeeded.",
    )
    de.add_argument(
        "--yes", action="store_true", help="run unattended to the end, approving every step"
    )
    de.add_argument(
        "--out",
        metavar="DIR",
        help="write transcript.md, transcript.json and transcript.html there, and keep the "
        "sandbox in DIR/sandbox and the store in DIR/data: the same command continues a "
        "restore a killed demo left there; default: transcripts only, in demo-out/TIME",
    )
    de.add_argument(
        "--schedulers", type=int, default=3, metavar="N", help="scheduler hosts; default: 3"
    )
    de.add_argument(
        "--as",
        dest="as_",
        default="alice",
        metavar="NAME",
        help="who starts the restore, one of the sandbox's console approvers; default: alice",
    )
    de.add_argument(
        "--aurora-version",
        choices=AURORA_VERSIONS,
        default="0.17",
        help="the Aurora release the sandbox behaves as; the procedure follows it (0.17: "
        "the online one, 0.22: the offline recovery-tool one); default: 0.17",
    )
    de.set_defaults(func=_demo)

    settings_help = (
        "Settings come from the environment: SLACK_BOT_TOKEN (required), "
        "SLACK_SIGNING_SECRET (required for serve), SLACK_APP_TOKEN (required for socket), "
        "SLACK_API_URL, AURORA_RESTORE_CLUSTERS (the cluster file, required), REDIS_URL "
        "(default: the embedded store in AURORA_RESTORE_DATA), AURORA_RESTORE_DATA, "
        "AURORA_RESTORE_REDACT, AURORA_RESTORE_RETENTION, PORT (serve; default 3000). "
        "See the README's Settings."
    )
    se = sub.add_parser(
        "serve",
        help="run the Slack app in HTTP mode (POST /slack/events, GET /healthz, GET /metrics)",
        description="Serve Slack's commands and interactivity at POST /slack/events on PORT, "
        "GET /healthz (200 while the store answers) and GET /metrics (Prometheus). "
        "No options. " + settings_help,
    )
    se.set_defaults(func=_slack)
    so = sub.add_parser(
        "socket",
        help="run the Slack app in Socket Mode (no public URL needed)",
        description="Take Slack's commands and interactivity over Socket Mode (an outgoing "
        "WebSocket: no public URL). No options. " + settings_help,
    )
    so.set_defaults(func=_slack)

    ex = sub.add_parser("export", help="write a restore's transcript (Markdown, JSON or HTML)")
    ex.add_argument("restore_id")
    ex.add_argument("--format", choices=["md", "json", "html"], default="md")
    ex.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    ex.set_defaults(func=_export)
    li = sub.add_parser("list", help="restores, newest first")
    li.add_argument("--limit", type=int, default=50)
    li.set_defaults(func=_list)
    ve = sub.add_parser(
        "verify-transcript", help="check a JSON transcript against itself and the store"
    )
    ve.add_argument("file")
    ve.add_argument("--offline", action="store_true", help="do not look in the store")
    ve.set_defaults(func=_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`aurora-restore list | head -1`): it had what it wanted.
        # stdout is pointed at /dev/null so that the flush at exit fails no more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
