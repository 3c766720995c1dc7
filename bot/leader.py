"""Which scheduler leads, from every source configured (runbook step restore.leader).

Three sources, read at once, each bounded by its own timeout:

* ``vars``: each scheduler's ``/vars`` (``scheduler_lifecycle_<STATE> 1``); a host whose
  lifecycle is ``state`` (LEADER_AWAITING_REGISTRATION while the schedulers are disabled,
  ACTIVE afterwards) is a leader. A dead or hanging host costs only its own timeout.
* ``zookeeper`` (only when the cluster has ``zk_endpoints``): under ``serverset_path``, a
  ``member_<seq>`` node (written only by an ACTIVE leader) names the leader in its JSON's
  ``serviceEndpoint.host``; without one, the election candidate ``_c_<uuid>-lock-<seq>``
  with the lowest sequence number does, its data being the hostname (aurora.md §4.2).
* ``logs`` (only when a ``remote`` is given): ``tail -n N <log_path>`` on each host; the
  latest leadership line decides: "Elected as leading scheduler!" after the last line
  that ends a leadership (lost leadership, DEAD, shutdown, a fresh start) → leader.

The policy (documented choice): *exactly one leader, every configured source naming
that same host*. A configured source that cannot be read (ZooKeeper down, no host's log
readable) is a problem, not a pass: the step fails and a re-check is offered, because
an unconfirmed leader is what a restore must not act on. Single hosts that cannot be
read (a down scheduler's /vars or SSH) are shown in the table but block nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from runbook.clusters import Cluster
from runbook.ports import HostResult

__all__ = [
    "DEFAULT_LOG_PATH",
    "SOURCES",
    "LeaderReport",
    "classify_log",
    "detect_leader",
    "read_zookeeper",
    "render_table",
]

SOURCES = ("vars", "zookeeper", "logs")
SOURCE_NAMES = {"vars": "/vars", "zookeeper": "ZooKeeper", "logs": "the logs"}
# The scheduler's log on a host; relative paths are taken from the SSH login directory
# (the sandbox's host root), which is how the tests point at the sandbox's logs.
DEFAULT_LOG_PATH = "/var/log/aurora/aurora-scheduler.log"

# Curator's lock nodes (0.16+), or the legacy client's (-zk_use_curator=false, up to 0.18).
CANDIDATE_RE = re.compile(r"^(?:_c_[0-9a-fA-F-]{36}-lock-|singleton_candidate_)(\d+)$")
MEMBER_RE = re.compile(r"^member_(\d+)$")

ELECTED = "Elected as leading scheduler"
# Lines after which a scheduler no longer leads (or has not yet been elected).
_ENDS = re.compile(
    r"Lost leadership|Shutdown complete|state machine transition \S+ -> "
    r"(DEAD|IDLE|PREPARING_STORAGE|STORAGE_PREPARED)\b"
)
_STOPPED = re.compile(r"Shutdown complete|state machine transition \S+ -> DEAD\b")


class VarsProbe(Protocol):
    async def vars(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> Mapping[str, dict[str, str] | str]: ...


class Remote(Protocol):
    async def run(
        self, commands: Mapping[str, str], *, timeout: float | None = None
    ) -> Mapping[str, HostResult]: ...


@dataclass(frozen=True)
class LeaderReport:
    # host -> source -> what that source says of it: "leader", "follower", "candidate",
    # "down: …", "unavailable: …", "stopped", "unknown", or a lifecycle state name.
    table: dict[str, dict[str, str]]
    # source -> the leader it names; None when it names none or cannot be read.
    # Only the sources configured appear ("zookeeper" needs zk_endpoints, "logs" a remote).
    by_source: dict[str, str | None]
    leader: str | None  # the single agreed leader, else None
    problems: list[str] = field(default_factory=list)  # why there is no agreed leader

    @property
    def ok(self) -> bool:
        return self.leader is not None and not self.problems


# ------------------------------------------------------------------------------ /vars


def _lifecycle(v: Mapping[str, str]) -> str:
    for k, val in v.items():
        if k.startswith("scheduler_lifecycle_") and val.strip() in ("1", "1.0"):
            return k.removeprefix("scheduler_lifecycle_")
    return "UNKNOWN"


async def _from_vars(
    cluster: Cluster, probe: VarsProbe, state: str, timeout: float
) -> tuple[dict[str, str], list[str]]:
    endpoints = {s.host: (s.connect_address, cluster.http_port_of(s)) for s in cluster.schedulers}
    got = await probe.vars(endpoints, timeout)
    cells: dict[str, str] = {}
    leaders: list[str] = []
    for s in cluster.schedulers:
        v = got.get(s.host, "no answer")
        if isinstance(v, str):
            cells[s.host] = f"down: {v}"
            continue
        lc = _lifecycle(v)
        if lc == state:
            cells[s.host] = "leader"
            leaders.append(s.host)
        elif lc == "UNKNOWN":
            cells[s.host] = "unknown"
        else:
            cells[s.host] = f"follower ({lc})"
    return cells, leaders


# -------------------------------------------------------------------------- ZooKeeper


@dataclass(frozen=True)
class ZkView:
    leader: str | None
    kind: str  # "member" (an ACTIVE leader advertised) or "candidate" or "none"
    candidates: list[str]  # hostnames of the candidates, lowest sequence first


def read_zookeeper(hosts: str, path: str, timeout: float) -> ZkView:
    """Blocking (run it in a thread): every step is bounded by `timeout` seconds."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError

    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    client = KazooClient(hosts=hosts, timeout=max(timeout, 1.0))
    try:
        client.start(timeout=timeout)
        try:
            children: list[str] = list(client.get_children(path))
        except NoNodeError:
            children = []

        def data(name: str) -> bytes | None:
            try:
                raw, _ = client.get(f"{path.rstrip('/')}/{name}")
                return bytes(raw)
            except NoNodeError:  # gone between the listing and the read
                return None

        def seq(regex: re.Pattern[str]) -> list[str]:
            found = [(int(m.group(1)), c) for c in children if (m := regex.match(c))]
            return [c for _, c in sorted(found)]

        hostnames = [d.decode().strip() for c in seq(CANDIDATE_RE) if (d := data(c))]
        for node in seq(MEMBER_RE):
            raw = data(node)
            try:
                member: Any = json.loads(raw) if raw else None
            except ValueError:
                continue
            endpoint = member.get("serviceEndpoint") if isinstance(member, dict) else None
            if isinstance(endpoint, dict) and endpoint.get("host"):
                return ZkView(str(endpoint["host"]), "member", hostnames)
        if hostnames:
            return ZkView(hostnames[0], "candidate", hostnames)
        return ZkView(None, "none", [])
    finally:
        with contextlib.suppress(Exception):
            client.stop()
        with contextlib.suppress(Exception):
            client.close()


async def _from_zookeeper(
    cluster: Cluster, timeout: float
) -> tuple[dict[str, str], str | None, str | None]:
    """(cells, leader, error)."""
    assert cluster.zk_endpoints is not None
    try:
        # read_zookeeper bounds itself; the outer limit is a guard against the unforeseen.
        view = await asyncio.wait_for(
            asyncio.to_thread(
                read_zookeeper, cluster.zk_endpoints, cluster.serverset_path, timeout
            ),
            2 * timeout + 1,
        )
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError) or type(exc).__name__ == "KazooTimeoutError":
            reason = f"no connection to {cluster.zk_endpoints} within {timeout:g}s"
        error = f"unavailable: {reason}"
        return {s.host: error for s in cluster.schedulers}, None, error
    cells: dict[str, str] = {}
    for s in cluster.schedulers:
        if s.host == view.leader:
            cells[s.host] = "leader (member_)" if view.kind == "member" else "leader"
        elif s.host in view.candidates:
            cells[s.host] = "candidate"
        else:
            cells[s.host] = "not in election"
    return cells, view.leader, None


# ------------------------------------------------------------------------------- logs


def classify_log(text: str) -> str:
    """What a scheduler log's tail says: "leader", "follower", "stopped" or "unknown"."""
    verdict = "unknown"
    for line in text.splitlines():
        if ELECTED in line:
            verdict = "leader"
        elif _STOPPED.search(line):
            verdict = "stopped"
        elif _ENDS.search(line):
            verdict = "follower"
    return verdict


async def _from_logs(
    cluster: Cluster, remote: Remote, log_path: str | None, lines: int, timeout: float
) -> tuple[dict[str, str], list[str], bool]:
    """(cells, leaders, any host readable). Without `log_path`, each scheduler's
    `scheduler_log` from the cluster file."""
    commands = {
        s.host: f"tail -n {int(lines)} -- "
        + shlex.quote(log_path or cluster.path(s, "scheduler_log") or DEFAULT_LOG_PATH)
        for s in cluster.schedulers
    }
    try:
        results = await remote.run(commands, timeout=timeout)
    except Exception as exc:  # the executor itself failed: no host readable
        cell = f"unreadable: {exc}"
        return {s.host: cell for s in cluster.schedulers}, [], False
    cells: dict[str, str] = {}
    leaders: list[str] = []
    readable = False
    for s in cluster.schedulers:
        r = results.get(s.host)
        if r is None or not r.ok:
            tail = r.stderr.strip().splitlines()[-1:] if r is not None else []
            why = "no result" if r is None else (r.error or (tail or [f"exit {r.exit_status}"])[0])
            cells[s.host] = f"unreadable: {why}"
            continue
        readable = True
        cells[s.host] = verdict = classify_log(r.stdout)
        if verdict == "leader":
            leaders.append(s.host)
    return cells, leaders, readable


# ---------------------------------------------------------------------------- together


def _many(source: str, leaders: list[str]) -> str:
    return f"{len(leaders)} leaders in {SOURCE_NAMES[source]}: {', '.join(leaders)}"


async def detect_leader(
    cluster: Cluster,
    probe: VarsProbe,
    remote: Remote | None = None,
    *,
    state: str = "LEADER_AWAITING_REGISTRATION",
    vars_timeout: float = 2.0,
    zk_timeout: float = 3.0,
    log_lines: int = 200,
    log_path: str | None = None,
    log_timeout: float = 10.0,
) -> LeaderReport:
    """Ask every configured source at once; see the module docstring for the policy."""

    async def nothing() -> None:
        return None

    vars_task = _from_vars(cluster, probe, state, vars_timeout)
    zk_task = _from_zookeeper(cluster, zk_timeout) if cluster.zk_endpoints else nothing()
    logs_task = (
        _from_logs(cluster, remote, log_path, log_lines, log_timeout) if remote else nothing()
    )
    (vars_cells, vars_leaders), zk, logs = await asyncio.gather(vars_task, zk_task, logs_task)

    table: dict[str, dict[str, str]] = {s.host: {} for s in cluster.schedulers}
    by_source: dict[str, str | None] = {}
    problems: list[str] = []
    available: dict[str, str | None] = {}  # the sources that could be read

    for host, cell in vars_cells.items():
        table[host]["vars"] = cell
    if len(vars_leaders) > 1:
        problems.append(_many("vars", vars_leaders))
    by_source["vars"] = vars_leaders[0] if len(vars_leaders) == 1 else None
    if any(not c.startswith("down:") for c in vars_cells.values()):
        available["vars"] = by_source["vars"]
    else:
        problems.append("/vars unavailable: no scheduler answered")

    if zk is not None:
        zk_cells, zk_leader, zk_error = zk
        for host, cell in zk_cells.items():
            table[host]["zookeeper"] = cell
        by_source["zookeeper"] = zk_leader
        if zk_error is not None:
            problems.append(f"ZooKeeper {zk_error}")
        else:
            available["zookeeper"] = zk_leader
            if zk_leader is not None and zk_leader not in table:
                problems.append(f"ZooKeeper names {zk_leader}, which is not in the cluster file")

    if logs is not None:
        log_cells, log_leaders, readable = logs
        for host, cell in log_cells.items():
            table[host]["logs"] = cell
        if len(log_leaders) > 1:
            problems.append(_many("logs", log_leaders))
        by_source["logs"] = log_leaders[0] if len(log_leaders) == 1 else None
        if readable:
            available["logs"] = by_source["logs"]
        else:
            problems.append("the logs unavailable: no host's log could be read")

    named = {v for v in available.values() if v is not None}
    if not named:
        if available:
            problems.append("no leader")
    elif len(named) > 1 or None in available.values():
        said = [
            f"{SOURCE_NAMES[s]} names {v if v is not None else 'no leader'}"
            for s, v in available.items()
        ]
        problems.append(", ".join(said))
    leader = next(iter(named)) if len(named) == 1 and not problems else None
    return LeaderReport(table=table, by_source=by_source, leader=leader, problems=problems)


def render_table(report: LeaderReport) -> str:
    """A monospace table host × source (for the console and a Slack code block)."""
    sources = [s for s in SOURCES if s in report.by_source]
    header = ["host", *sources]
    rows = [[h, *(report.table[h].get(s, "") for s in sources)] for h in report.table]
    rows.append(["=> leader", *(report.by_source[s] or "-" for s in sources)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    out.append(f"leader: {report.leader}" if report.leader else "leader: none agreed")
    out += [f"problem: {p}" for p in report.problems]
    return "\n".join(out)


async def detector(cluster: Cluster, probe: VarsProbe, remote: Remote, state: str) -> LeaderReport:
    """The engine's leader port: every source the cluster file configures."""
    return await detect_leader(cluster, probe, remote, state=state)
