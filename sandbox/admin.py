"""The `aurora_admin` stand-in on a simulated host (`python -m sandbox.admin ARGS`).

It mimics Aurora's admin client where the restore procedure can see it (docs/aurora-notes.md
§F5): the clusters.json files and their precedence, `zk` winning over `scheduler_uri`,
`--bypass-leader-redirect` anywhere on the line, the exact usage strings, log lines on
stderr as `<LEVEL>] message`, `Response from scheduler: CODE (message: ...)`, retrying
ERROR_TRANSIENT for the RPC maximum wait, and the tracebacks a real client dies with
(NotRetriableError after a dropped connection on a non-idempotent call, AuthError on 401).

The scheduler is spoken to with the JSON stand-in of Aurora's Thrift API that
sandbox.scheduler serves on POST /api.

Knobs for tests (seconds): AURORA_ADMIN_RPC_MAX_WAIT (default 600, the client's 10 min),
AURORA_ADMIN_CONNECT_MAX_WAIT (default 10: how long a ZooKeeper lookup is retried).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urljoin, urlparse

import httpx

from sandbox.backups import ACTIVE_STATES
from sandbox.election import ElectionUnavailable, Member, local_member, zk_member
from sandbox.layout import SandboxInfo

# The name it was installed under (aurora-admin on Debian, aurora_admin on RPM hosts).
PROG = os.environ.get("SANDBOX_ADMIN_PROG") or "aurora_admin"
RPC_RETRY_INTERVAL = 5.0
CONNECT_RETRY_INTERVAL = 2.0
BYPASS_OPTION = "--bypass-leader-redirect"
BYPASS_HEADER = "Bypass-Leader-Redirect"
CLIENT_MODULE = "apache.aurora.client.api.scheduler_client"
# Only queryRecovery is marked retryable among the recovery calls (docs/aurora-notes.md §F5).
RETRYABLE = frozenset({"queryRecovery"})


# ------------------------------------------------------------------------------ output


def log(level: str, message: str) -> None:
    """twitter.common's plain formatter: ` INFO] msg`, ` WARN] msg`, `ERROR] msg`, `FATAL] msg`."""
    sys.stderr.write(f"{level.rjust(5)}] {message}\n")
    sys.stderr.flush()


class Exit(Exception):
    """Leave main() with this status (everything worth saying has been said)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def die(message: str) -> NoReturn:
    log("FATAL", message)
    raise Exit(1)


def crash(exception: str, message: str, frames: tuple[str, ...] = ()) -> NoReturn:
    """An uncaught client exception, printed the way Python prints one."""
    lines = ["Traceback (most recent call last):"]
    for frame in ("apache/aurora/admin/aurora_admin.py, in proxy_main", *frames):
        path, _, func = frame.partition(", in ")
        lines.append(f'  File "{path}", in {func}')
    lines.append(f"{exception}: {message}")
    sys.stderr.write("\n".join(lines) + "\n")
    raise Exit(1)


def combine_messages(response: dict[str, Any]) -> str:
    return ", ".join(d.get("message") or "Unknown error" for d in response.get("details") or [])


def format_response(response: dict[str, Any]) -> str:
    return (
        f"Response from scheduler: {response.get('responseCode')} "
        f"(message: {combine_messages(response)})"
    )


def check_and_log_response(response: dict[str, Any]) -> None:
    log("INFO", format_response(response))
    if response.get("responseCode") != "OK":
        raise Exit(1)


# ------------------------------------------------------------------------ clusters.json


def cluster_files(env: dict[str, str] | None = None) -> list[Path]:
    """$AURORA_CONFIG_ROOT/clusters.json (default /etc/aurora), then ~/.aurora/clusters.json."""
    env = dict(os.environ) if env is None else env
    root = Path(env.get("AURORA_CONFIG_ROOT") or "/etc/aurora")
    home = Path(env.get("HOME") or Path.home())
    return [root / "clusters.json", home / ".aurora" / "clusters.json"]


def load_clusters(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """A later file replaces a same-named entry; a file is a JSON list or dict of entries."""
    clusters: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            die(f"Failed to load cluster configuration from {path}: {exc}")
        if isinstance(data, dict):
            entries = list(data.values())
        elif isinstance(data, list):
            entries = data
        else:
            die(f"Failed to load cluster configuration from {path}: not a list or an object")
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name"):
                clusters[str(entry["name"])] = entry
    return clusters


def get_cluster(name: str, clusters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if name not in clusters:
        die(f"Unknown cluster: {name}. Known clusters: {', '.join(clusters)}")
    return clusters[name]


# ------------------------------------------------------------------------ the scheduler


class CouldNotConnect(Exception):
    pass


class TransportError(Exception):
    """Thrift's TTransportException: the request may or may not have been processed."""


class AuthError(Exception):
    pass


@dataclass(frozen=True)
class Endpoint:
    raw_url: str  # what the cluster config or ZooKeeper says (get_scheduler prints it)
    api_url: str  # where requests go (a sandbox hostname is mapped to its address)


def _sandbox() -> SandboxInfo | None:
    return SandboxInfo.load() if os.environ.get("SANDBOX_DIR") else None


def _find_member(cluster: dict[str, Any], info: SandboxInfo | None) -> Member | None:
    """The ServerSet lookup: the sandbox's election when one runs, else ZooKeeper itself."""
    if info is not None and not info.zk_endpoints:
        return local_member(info.election_dir)
    port = int(cluster.get("zk_port") or 2181)
    hosts = ",".join(f"{h}:{port}" for h in str(cluster["zk"]).split(","))
    return zk_member(hosts, str(cluster["scheduler_zk_path"]), timeout=10.0)


def resolve(cluster: dict[str, Any], info: SandboxInfo | None) -> Endpoint:
    """SchedulerClient.get: `zk` wins over `scheduler_uri`."""
    if cluster.get("zk"):
        if not cluster.get("scheduler_zk_path"):
            crash(
                "ValueError",
                "Cluster has no defined scheduler path, must specify scheduler_zk_path "
                "in your cluster config!",
            )
        try:
            member = _find_member(cluster, info)
        except ElectionUnavailable:
            raise CouldNotConnect("Failed to connect to Zookeeper within 10 seconds.") from None
        if member is None:
            raise CouldNotConnect(f"No schedulers detected in {cluster['name']}!")
        endpoints = member.get("additionalEndpoints") or {}
        scheme = "https" if "https" in endpoints else "http"
        endpoint = endpoints.get(scheme) or member.get("serviceEndpoint") or {}
        host, port = str(endpoint.get("host")), endpoint.get("port")
        address = next((h.address for h in (info.hosts if info else []) if h.name == host), host)
        return Endpoint(f"{scheme}://{host}:{port}", f"{scheme}://{address}:{port}/api")
    if cluster.get("scheduler_uri"):
        uri = str(cluster["scheduler_uri"])
        return Endpoint(uri, urljoin(uri, "api"))
    crash("ValueError", '"cluster" does not specify zk or scheduler_uri')


def _transport_message(api_url: str, exc: httpx.HTTPError) -> str:
    """The text requests would have put in 'Unknown error talking to <uri>: ...'."""
    if isinstance(exc, httpx.TimeoutException):
        return f"Timed out talking to {api_url}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        detail = (
            "('Connection aborted.', "
            "RemoteDisconnected('Remote end closed connection without response',))"
        )
    elif isinstance(exc, httpx.ConnectError):
        url = urlparse(api_url)
        detail = (
            f"HTTPConnectionPool(host='{url.hostname}', port={url.port}): Max retries exceeded "
            f"with url: {url.path} (Caused by NewConnectionError('<urllib3.connection."
            f"HTTPConnection object>: Failed to establish a new connection: {exc}',))"
        )
    else:
        detail = str(exc) or type(exc).__name__
    return f"Unknown error talking to {api_url}: {detail}"


def post(api_url: str, method: str, args: dict[str, Any], bypass: bool) -> dict[str, Any]:
    """One RPC over HTTP; 307 is followed (the leader redirect)."""
    if urlparse(api_url).scheme not in ("http", "https"):
        raise TransportError(
            f"Unknown error talking to {api_url}: Invalid URL '{api_url}': "
            f"No schema supplied. Perhaps you meant http://{api_url}?"
        )
    headers = {"User-Agent": "Aurora Admin", "Content-Type": "application/json"}
    if bypass:
        headers[BYPASS_HEADER] = "true"
    body = {"method": method, "args": args}
    timeout = httpx.Timeout(60.0, connect=10.0)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            response = client.post(api_url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise TransportError(_transport_message(api_url, exc)) from None
    if response.status_code >= 400:
        kind = "Client" if response.status_code < 500 else "Server"
        text = (
            f"{response.status_code} {kind} Error: {response.reason_phrase} for url: {response.url}"
        )
        if response.status_code in (401, 403):
            raise AuthError(text)
        raise TransportError(f"Unknown error talking to {api_url}: {text}")
    result: dict[str, Any] = response.json()
    return result


class SchedulerProxy:
    """Aurora's SchedulerProxy: connect (resolve) lazily, retry what may be retried."""

    def __init__(self, cluster: dict[str, Any], bypass: bool) -> None:
        self.cluster = cluster
        self.name = str(cluster["name"])
        self.bypass = bypass
        self.info = _sandbox() if cluster.get("zk") else None
        self.endpoint: Endpoint | None = None
        self.rpc_max_wait = float(os.environ.get("AURORA_ADMIN_RPC_MAX_WAIT", "600"))
        self.connect_max_wait = float(os.environ.get("AURORA_ADMIN_CONNECT_MAX_WAIT", "10"))

    def connect(self) -> Endpoint:
        if self.endpoint is not None:
            return self.endpoint
        deadline = time.monotonic() + self.connect_max_wait
        while True:
            try:
                self.endpoint = resolve(self.cluster, self.info)
                return self.endpoint
            except CouldNotConnect as exc:
                log("WARN", f"Could not connect to scheduler: {exc}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    crash(f"{CLIENT_MODULE}.CouldNotConnect", str(exc))
                time.sleep(min(CONNECT_RETRY_INTERVAL, remaining))

    def call(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        frames = (f"apache/aurora/client/api/scheduler_client.py, in {method}",)
        deadline = time.monotonic() + self.rpc_max_wait
        while True:
            endpoint = self.connect()
            try:
                response = post(endpoint.api_url, method, args or {}, self.bypass)
            except AuthError as exc:
                log("ERROR", "")  # the unauthenticated module's failed_auth_message
                crash(f"{CLIENT_MODULE}.AuthError", str(exc), frames)
            except TransportError as exc:
                if method not in RETRYABLE:
                    crash(
                        f"{CLIENT_MODULE}.NotRetriableError",
                        "Transport error communicating with scheduler during non-idempotent "
                        f"operation: {exc}, not retrying",
                        frames,
                    )
                log("WARN", f"Transport error communicating with scheduler: {exc}, retrying...")
                self.endpoint = None
            except ValueError as exc:
                crash(
                    f"{CLIENT_MODULE}.ThriftInternalError",
                    f"Error during thrift call {method} to {self.name}: {exc}",
                    frames,
                )
            else:
                if response.get("responseCode") != "ERROR_TRANSIENT":
                    return response
                log(
                    "WARN",
                    f"Connection error with scheduler: {combine_messages(response)}, "
                    "reconnecting...",
                )
                self.endpoint = None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                crash(
                    f"{CLIENT_MODULE}.TimeoutError",
                    f"Timed out attempting to issue {method} to {self.name}",
                    frames,
                )
            time.sleep(min(RPC_RETRY_INTERVAL, remaining))


# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    usage: str  # the first docstring line, exactly as Aurora has it
    help: str
    run: Callable[[SchedulerProxy, list[str]], None]


def _backup_now(api: SchedulerProxy, args: list[str]) -> None:
    check_and_log_response(api.call("performBackup"))


def _list_backups(api: SchedulerProxy, args: list[str]) -> None:
    response = api.call("listBackups")
    check_and_log_response(response)
    backups = (response.get("result") or {}).get("listBackupsResult", {}).get("backups", [])
    print(f"{len(backups)} available backups:")
    for backup in backups:
        print(backup)


def _stage_recovery(api: SchedulerProxy, args: list[str]) -> None:
    check_and_log_response(api.call("stageRecovery", {"backupId": args[1]}))


def _print_recovery_tasks(api: SchedulerProxy, args: list[str]) -> None:
    response = api.call("queryRecovery", {"statuses": list(ACTIVE_STATES)})
    check_and_log_response(response)
    log("INFO", "Role\tJob\tShard\tStatus\tTask ID")
    tasks = (response.get("result") or {}).get("queryRecoveryResult", {}).get("tasks", [])
    for t in tasks:
        row = (t["role"], t["job"], str(t["instance"]), t["status"], t["task_id"])
        log("INFO", "\t".join(row))


def _delete_recovery_tasks(api: SchedulerProxy, args: list[str]) -> None:
    ids = sorted(set(args[1].split(",")))
    check_and_log_response(api.call("deleteRecoveryTasks", {"taskIds": ids}))


def _commit_recovery(api: SchedulerProxy, args: list[str]) -> None:
    check_and_log_response(api.call("commitRecovery"))


def _unload_recovery(api: SchedulerProxy, args: list[str]) -> None:
    check_and_log_response(api.call("unloadRecovery"))


def _snapshot(api: SchedulerProxy, args: list[str]) -> None:
    check_and_log_response(api.call("snapshot"))


def _get_scheduler(api: SchedulerProxy, args: list[str]) -> None:
    print(f"Found leading scheduler at: {api.connect().raw_url}")


COMMANDS: dict[str, Command] = {
    "get_scheduler": Command(
        "usage: get_scheduler CLUSTER", "Dumps the leading scheduler endpoint URL.", _get_scheduler
    ),
    "scheduler_backup_now": Command(
        "usage: scheduler_backup_now cluster",
        "Immediately initiates a full storage backup.",
        _backup_now,
    ),
    "scheduler_commit_recovery": Command(
        "usage: scheduler_commit_recovery cluster", "Commits a staged recovery.", _commit_recovery
    ),
    "scheduler_delete_recovery_tasks": Command(
        "usage: scheduler_delete_recovery_tasks cluster task_ids",
        "Deletes a comma-separated list of task IDs from a staged recovery.",
        _delete_recovery_tasks,
    ),
    "scheduler_list_backups": Command(
        "usage: scheduler_list_backups cluster",
        "Lists backups available for recovery.",
        _list_backups,
    ),
    "scheduler_print_recovery_tasks": Command(
        "usage: scheduler_print_recovery_tasks cluster",
        "Prints all active tasks in a staged recovery.",
        _print_recovery_tasks,
    ),
    "scheduler_snapshot": Command(
        "usage: scheduler_snapshot cluster",
        "Request that the scheduler perform a storage snapshot and block until complete.",
        _snapshot,
    ),
    "scheduler_stage_recovery": Command(
        "usage: scheduler_stage_recovery cluster backup_id",
        "Stages a backup for recovery.",
        _stage_recovery,
    ),
    "scheduler_unload_recovery": Command(
        "usage: scheduler_unload_recovery cluster", "Unloads a staged recovery.", _unload_recovery
    ),
}


def arity(command: Command) -> int:
    return len(command.usage.split()) - 2


def usage_text() -> str:
    lines = [f"Usage: {PROG} [{BYPASS_OPTION}] COMMAND [ARGS]", "", "Commands:"]
    lines += [f"    {c.usage.removeprefix('usage: ')}" for c in COMMANDS.values()]
    lines += ["    help [COMMAND]", "", "Options:", f"  {BYPASS_OPTION}  skip the leader redirect"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Invocation:
    command: str
    args: list[str]
    bypass: bool


def parse_args(argv: list[str]) -> Invocation:
    """Options may sit anywhere (optparse with interspersed arguments)."""
    bypass = False
    words: list[str] = []
    for arg in argv:
        if arg == BYPASS_OPTION:
            bypass = True
        elif arg in ("-h", "--help"):
            words.insert(0, "help")
        elif arg in ("-v", "--verbose"):
            continue
        elif arg.startswith("-") and arg != "-":
            sys.stderr.write(f"{usage_text()}\n{PROG}: error: no such option: {arg}\n")
            raise Exit(2)
        else:
            words.append(arg)
    if not words:
        sys.stderr.write(usage_text())
        raise Exit(1)
    return Invocation(words[0], words[1:], bypass)


def run_help(args: list[str]) -> None:
    if not args:
        sys.stdout.write(usage_text())
        return
    command = COMMANDS.get(args[0])
    if command is None:
        die(f"Unknown command: {args[0]}")
    print(f"{command.usage}\n\n  {command.help}")


def run(argv: list[str]) -> None:
    inv = parse_args(argv)
    if inv.command == "help":
        run_help(inv.args)
        return
    command = COMMANDS.get(inv.command)
    if command is None:
        sys.stderr.write(f"Unknown command: {inv.command}\n\n{usage_text()}")
        raise Exit(1)
    if len(inv.args) != arity(command):
        die(f"{command.usage}\n\nsee the help subcommand for more details.")
    cluster = get_cluster(inv.args[0], load_clusters(cluster_files()))
    command.run(SchedulerProxy(cluster, inv.bypass), inv.args)


def main(argv: list[str] | None = None) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except Exit as exc:
        return exc.code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
