"""Which scheduler leads, from every source configured (runbook step restore.leader).

Three sources, read at once, each bounded by its own timeout:

* ``vars``: each scheduler's ``/vars`` (``scheduler_lifecycle_<STATE> 1``); a host whose
  lifecycle is ``state`` (LEADER_AWAITING_REGISTRATION while the schedulers are disabled,
  ACTIVE afterwards) is a leader. A dead or hanging host costs only its own timeout.
* ``zookeeper`` (only when the cluster has ``zk_endpoints``): under ``serverset_path``, a
  ``member_<seq>`` node (written only by an ACTIVE leader) names the leader in its JSON's
  ``serviceEndpoint.host``; without one, the election candidate ``_c_<uuid>-lock-<seq>``
  (or the legacy ``singleton_candidate_<seq>``) with the lowest sequence number does.
  Both hold the scheduler's *advertised HTTP host*, which is ``-hostname`` when set, else
  the Jetty bind ``-ip``, else ``InetAddress.getLocalHost().getHostAddress()``: an IP
  address on every packaged host, often 127.0.1.1 on all of them on Debian
  (apache/aurora ``src/main/java/org/apache/aurora/scheduler/http/JettyServerModule.java``,
  ``scheduler/discovery/CuratorSingletonService.java`` ``leaderSelector.setId(
  endpoint.getHostName())``). So each datum is matched to the cluster file's schedulers:
  it matches one when it equals its ``host``, its ``address``, or an address its ``host``
  resolves to (`match_datum`). When the data cannot tell the schedulers apart (the
  leader's datum matches several schedulers, or none, or several candidates carry it),
  ZooKeeper *abstains*: it says "cannot tell: …" and neither names a leader nor disagrees.
* ``logs`` (only when a ``remote`` is given): the last lines of each scheduler's log, from
  journald (``sudo -n journalctl -u <scheduler_unit>``) unless ``scheduler_log`` names a
  file (``tail``); the latest leadership line decides (`classify_log`).

The policy (documented choice): *exactly one leader, every source that can tell naming
that same host, and at least one source naming it*. A configured source that cannot be
read at all (ZooKeeper down, no host's log readable) is a problem, not a pass: the step
fails and a re-check is offered, because an unconfirmed leader is what a restore must not
act on. A source that abstains is listed in `LeaderReport.abstained` and in the table.
Single hosts that cannot be read (a down scheduler's /vars or SSH) are shown in the table
but block nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from runbook.clusters import Cluster, Scheduler
from runbook.errors import ZkUnavailable
from runbook.hostlog import log_read_command
from runbook.ports import HostResult

__all__ = [
    "SOURCES",
    "LeaderReport",
    "ZkReader",
    "ZkUnavailable",
    "ZkView",
    "check_sources",
    "classify_log",
    "detect_leader",
    "detector",
    "interpret",
    "log_command",
    "match_datum",
    "read_zookeeper",
    "resolve_hosts",
]

SOURCES = ("vars", "zookeeper", "logs")
SOURCE_NAMES = {"vars": "/vars", "zookeeper": "ZooKeeper", "logs": "the logs"}

# Curator's lock nodes (0.16+), or the legacy client's (-zk_use_curator=false, up to 0.18).
CANDIDATE_RE = re.compile(r"^(?:_c_[0-9a-fA-F-]{36}-lock-|singleton_candidate_)(\d+)$")
MEMBER_RE = re.compile(r"^member_(\d+)$")

# The scheduler's own leadership messages, as Aurora logs them:
# apache/aurora src/main/java/org/apache/aurora/scheduler/SchedulerLifecycle.java
# (`LOG.info("Elected as leading scheduler!")` in handleLeading,
# `LOG.error("Lost leadership, committing suicide.")` in SchedulerCandidateImpl.onDefeated)
# and the lifecycle's transitions, logged by
# commons/src/main/java/org/apache/aurora/common/util/StateMachine.java `logTransitions()`:
# `name + " state machine transition " + from + " -> " + to` (+ " (not allowed)").
# Matched anywhere in a line, so that a journald `short` prefix (`Dec 01 22:17:00 host
# aurora-scheduler-startup[123]: `), logback's `%.-1level%date{MMdd HH:mm:ss.SSS}
# [%thread, %logger{0}] ` (src/main/resources/logback.xml) or an operator's own layout
# may come before the message.
ELECTED = "Elected as leading scheduler!"
LOST = "Lost leadership, committing suicide."
TRANSITION_RE = re.compile(
    r"SchedulerLifecycle state machine transition ([A-Z_]+) -> ([A-Z_]+)( \(not allowed\))?"
)
_LEADING_STATES = {"LEADER_AWAITING_REGISTRATION", "ACTIVE"}
_STARTING_STATES = {"IDLE", "PREPARING_STORAGE", "STORAGE_PREPARED"}

# What journalctl says, with exit status 0, to a user outside adm/systemd-journal: the
# unit's messages are then not shown, so the log is unreadable rather than silent.
JOURNAL_DENIED = (
    "Hint: You are currently not seeing messages from other users",
    "No journal files were opened due to insufficient permissions",
)

log = logging.getLogger(__name__)


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
    # "down: …", "unavailable: …", "unreadable: …", "cannot tell: …", "stopped",
    # "unknown", or a lifecycle state name.
    table: dict[str, dict[str, str]]
    # source -> the leader it names; None when it names none, cannot be read or abstains.
    # Only the sources configured appear ("zookeeper" needs zk_endpoints, "logs" a remote).
    by_source: dict[str, str | None]
    leader: str | None  # the single agreed leader, else None
    problems: list[str] = field(default_factory=list)  # why there is no agreed leader
    # source -> why it neither names a leader nor disagrees ("cannot tell: …").
    abstained: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.leader is not None and not self.problems


# ------------------------------------------------------------------------------ /vars


def _lifecycle(v: Mapping[str, str]) -> str:
    for k, val in v.items():
        if k.startswith("scheduler_lifecycle_") and val.strip() in ("1", "1.0"):
            return k.removeprefix("scheduler_lifecycle_")
    return "UNKNOWN"


def _endpoints(cluster: Cluster) -> dict[str, tuple[str, int]]:
    return {s.host: (s.connect_address, cluster.http_port_of(s)) for s in cluster.schedulers}


async def _from_vars(
    cluster: Cluster, probe: VarsProbe, state: str, timeout: float
) -> tuple[dict[str, str], list[str]]:
    got = await probe.vars(_endpoints(cluster), timeout)
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


# -------------------------------------------------------------------- ZooKeeper: read


@dataclass(frozen=True)
class ZkView:
    """What the serverset holds, as written (data are not yet matched to schedulers)."""

    leader: str | None  # the leader's datum: member_'s host, else the lowest candidate's
    kind: str  # "member" (an ACTIVE leader advertised) or "candidate" or "none"
    candidates: list[str]  # the candidates' data, lowest sequence first


def _by_sequence(children: Iterable[str], regex: re.Pattern[str]) -> list[str]:
    found = [(int(m.group(1)), c) for c in children if (m := regex.match(c))]
    return [c for _, c in sorted(found)]


def _member_host(raw: bytes | None) -> str | None:
    try:
        member: Any = json.loads(raw) if raw else None
    except ValueError:
        return None
    endpoint = member.get("serviceEndpoint") if isinstance(member, dict) else None
    host = endpoint.get("host") if isinstance(endpoint, dict) else None
    return str(host).strip() if host else None


class ZkReader:
    """One ZooKeeper client for one cluster's serverset, reused across reads.

    `read` blocks (run it in a thread) and is bounded by its `timeout`; it connects on
    first use, and again after a failed read or `close`. Kazoo's exceptions become
    `ZkUnavailable` here and nowhere else.
    """

    def __init__(self, hosts: str, path: str) -> None:
        self.hosts = hosts
        self.path = path
        self._client: Any = None
        self._reading = threading.Lock()  # one read at a time
        self._guard = threading.Lock()  # around self._client

    def read(self, timeout: float) -> ZkView:
        if not self._reading.acquire(timeout=timeout):
            raise ZkUnavailable(f"a previous read of {self.hosts} is still under way")
        try:
            return self._read(time.monotonic() + timeout, timeout)
        finally:
            self._reading.release()

    @property
    def session_id(self) -> int | None:
        """The ZooKeeper session of the open connection; None when none is open."""
        with self._guard:
            client = self._client
        cid = client.client_id if client is not None else None
        return int(cid[0]) if cid else None

    def close(self) -> None:
        """Release the connection (a later `read` connects again)."""
        with self._guard:
            client, self._client = self._client, None
        _stop(client)

    def _read(self, deadline: float, timeout: float) -> ZkView:
        from kazoo.exceptions import KazooException, NoNodeError
        from kazoo.handlers.threading import KazooTimeoutError

        phase = "connect"
        try:
            client = self._connect(timeout)
            phase = "read"

            def wait(async_result: Any) -> Any:
                return async_result.get(timeout=max(deadline - time.monotonic(), 0.01))

            try:
                children = list(wait(client.get_children_async(self.path)))
            except NoNodeError:  # no scheduler has campaigned yet
                return ZkView(None, "none", [])
            candidates = _by_sequence(children, CANDIDATE_RE)
            members = _by_sequence(children, MEMBER_RE)
            base = self.path.rstrip("/")
            pending = {n: client.get_async(f"{base}/{n}") for n in candidates + members}
            data: dict[str, bytes | None] = {}
            for name, result in pending.items():
                try:
                    data[name] = bytes(wait(result)[0])
                except NoNodeError:  # gone between the listing and the read
                    data[name] = None
        except (KazooException, KazooTimeoutError, OSError) as exc:
            self.close()  # a fresh connection next time
            raise ZkUnavailable(self._why(exc, phase, timeout)) from None
        return _view(
            [d.decode(errors="replace").strip() for c in candidates if (d := data[c])],
            [h for m in members if (h := _member_host(data[m]))],
        )

    def _connect(self, timeout: float) -> Any:
        from kazoo.client import KazooClient

        with self._guard:
            if self._client is not None:
                return self._client
        logging.getLogger("kazoo").setLevel(logging.CRITICAL)
        client = KazooClient(hosts=self.hosts, timeout=max(timeout, 1.0))
        try:
            client.start(timeout=timeout)
        except BaseException:
            _stop(client)
            raise
        with self._guard:
            self._client = client
        return client

    def _why(self, exc: BaseException, phase: str, timeout: float) -> str:
        from kazoo.exceptions import NoAuthError
        from kazoo.handlers.threading import KazooTimeoutError

        if isinstance(exc, KazooTimeoutError):
            if phase == "connect":
                return f"no connection to {self.hosts} within {timeout:g}s"
            return f"no answer from {self.hosts} within {timeout:g}s"
        if isinstance(exc, NoAuthError):
            return f"not allowed to read {self.path} on {self.hosts}"
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__} from {self.hosts}" + (f": {text[0]}" if text else "")


def _stop(client: Any) -> None:
    if client is None:
        return
    for method in (client.stop, client.close):
        try:
            method()
        except Exception as exc:  # closing is best effort: the connection is gone anyway
            log.debug("closing the ZooKeeper client: %s", exc)


def _view(candidates: list[str], members: list[str]) -> ZkView:
    if members:
        return ZkView(members[0], "member", candidates)
    if candidates:
        return ZkView(candidates[0], "candidate", candidates)
    return ZkView(None, "none", [])


def read_zookeeper(hosts: str, path: str, timeout: float) -> ZkView:
    """One read with a client of its own (blocking; run it in a thread)."""
    reader = ZkReader(hosts, path)
    try:
        return reader.read(timeout)
    finally:
        reader.close()


# ----------------------------------------------------------------- ZooKeeper: match


def _norm(value: str) -> str:
    """An address in canonical form, a host name in lower case without the final dot."""
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        return value.lower().rstrip(".")


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return False
    return True


def match_datum(
    datum: str, schedulers: Iterable[Scheduler], resolved: Mapping[str, frozenset[str]]
) -> list[str]:
    """The hosts of the schedulers a ZooKeeper datum stands for: those whose `host` or
    `address` it is, or one of whose `host`'s addresses (`resolved`: host -> addresses)."""
    d = _norm(datum)
    return [
        s.host
        for s in schedulers
        if d in {_norm(s.host), _norm(s.connect_address)}
        or d in {_norm(a) for a in resolved.get(s.host, ())}
    ]


async def resolve_hosts(hosts: Iterable[str], timeout: float) -> dict[str, frozenset[str]]:
    """Each host's addresses (`socket.getaddrinfo`), all at once, within `timeout`; a host
    that does not resolve in time (or at all) gets none. Each lookup runs in a daemon
    thread of its own: a hung resolver never holds the event loop's executor."""
    loop = asyncio.get_running_loop()

    def lookup(host: str) -> asyncio.Future[frozenset[str]]:
        future: asyncio.Future[frozenset[str]] = loop.create_future()

        def settle(value: frozenset[str]) -> None:
            if not future.done():
                future.set_result(value)

        def run() -> None:
            try:
                infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
                found = frozenset(str(info[4][0]) for info in infos)
            except (OSError, UnicodeError):
                found = frozenset()
            loop.call_soon_threadsafe(settle, found)

        threading.Thread(target=run, name=f"resolve {host}", daemon=True).start()
        return future

    names = list(dict.fromkeys(hosts))
    futures = [lookup(h) for h in names]
    done, _ = await asyncio.wait(futures, timeout=timeout) if futures else (set(), set())
    return {
        h: (f.result() if f in done else frozenset()) for h, f in zip(names, futures, strict=True)
    }


@dataclass(frozen=True)
class ZkVerdict:
    """ZooKeeper's view matched to the cluster file."""

    cells: dict[str, str]
    leader: str | None  # the scheduler it names, when it can tell
    cannot_tell: str | None  # "cannot tell: …" when it abstains
    # each candidate's datum and the scheduler it matches (None: none, or several)
    candidates: list[tuple[str, str | None]]


def _shown(datum: str, host: str, kind: str = "") -> str:
    """`(member_ 10.0.0.5)`: what ZooKeeper holds, when it is not the host name itself."""
    parts = [p for p in (kind, "" if _norm(datum) == _norm(host) else datum) if p]
    return f" ({' '.join(parts)})" if parts else ""


def _cannot_tell(view: ZkView, matches: Mapping[str, list[str]]) -> str | None:
    if view.leader is None:
        return None
    lead = _norm(view.leader)
    same = [c for c in view.candidates if _norm(c) == lead]
    if len(same) > 1:
        if len(same) == len(view.candidates):
            return f"cannot tell: every candidate is {view.leader}"
        return f"cannot tell: {len(same)} candidates are {view.leader}"
    found = matches[view.leader]
    if len(found) > 1:
        return f"cannot tell: {view.leader} matches {', '.join(found)}"
    if not found:
        return f"cannot tell: {view.leader} matches no scheduler in the cluster file"
    return None


def interpret(view: ZkView, cluster: Cluster, resolved: Mapping[str, frozenset[str]]) -> ZkVerdict:
    """Match the view's data to the cluster's schedulers, and say whom it names (or why
    it cannot tell)."""
    data = [*view.candidates, *([view.leader] if view.leader is not None else [])]
    matches = {d: match_datum(d, cluster.schedulers, resolved) for d in data}
    candidates = [(d, m[0] if len(m := matches[d]) == 1 else None) for d in view.candidates]
    reason = _cannot_tell(view, matches)
    leader = None
    if view.leader is not None and reason is None:
        leader = matches[view.leader][0]
    cells: dict[str, str] = {}
    for s in cluster.schedulers:
        if leader == s.host and view.leader is not None:
            kind = "member_" if view.kind == "member" else ""
            cells[s.host] = "leader" + _shown(view.leader, s.host, kind)
            continue
        mine = [d for d in view.candidates if s.host in matches[d]]
        unique = [d for d in mine if len(matches[d]) == 1]
        if reason is not None and view.leader is not None:
            unique = [d for d in unique if _norm(d) != _norm(view.leader)]
        if unique:
            cells[s.host] = "candidate" + _shown(unique[0], s.host)
        elif reason is not None:
            cells[s.host] = reason
        elif mine:
            cells[s.host] = f"candidate? ({mine[0]})"
        else:
            cells[s.host] = "not in election"
    return ZkVerdict(cells, leader, reason, candidates)


def _check_reader(cluster: Cluster, zk: ZkReader | None) -> None:
    """A reader handed in must read this cluster's serverset (a caller's mistake else)."""
    if zk is not None and (zk.hosts, zk.path) != (cluster.zk_endpoints, cluster.serverset_path):
        raise ValueError(f"zk reads {zk.hosts} {zk.path}, not cluster {cluster.name}'s serverset")


async def _read_zk(cluster: Cluster, timeout: float, zk: ZkReader | None) -> ZkView:
    """Raise ZkUnavailable or TimeoutError when ZooKeeper cannot be read."""
    assert cluster.zk_endpoints is not None
    reader = zk or ZkReader(cluster.zk_endpoints, cluster.serverset_path)
    try:
        # The reader bounds itself; the outer limit is a guard against the unforeseen.
        return await asyncio.wait_for(asyncio.to_thread(reader.read, timeout), 2 * timeout + 1)
    finally:
        if zk is None:
            await asyncio.to_thread(reader.close)


async def _from_zookeeper(
    cluster: Cluster, timeout: float, zk: ZkReader | None = None
) -> tuple[ZkVerdict, str | None]:
    """(verdict, error); error is "unavailable: …" when ZooKeeper cannot be read."""
    try:
        view = await _read_zk(cluster, timeout, zk)
    except (ZkUnavailable, TimeoutError) as exc:
        reason = str(exc) or f"no answer from {cluster.zk_endpoints} within {timeout:g}s"
        error = f"unavailable: {reason}"
        return ZkVerdict({s.host: error for s in cluster.schedulers}, None, None, []), error
    resolved: dict[str, frozenset[str]] = {}
    data = [*view.candidates, *([view.leader] if view.leader else [])]
    if any(_is_address(d) for d in data):  # names resolve to addresses, never to names
        resolved = await resolve_hosts([s.host for s in cluster.schedulers], timeout)
    return interpret(view, cluster, resolved), None


# ------------------------------------------------------------------------------- logs


def classify_log(text: str) -> str:
    """What a scheduler log's tail says: "leader", "follower", "stopped" or "unknown".

    The last leadership line wins: elected (or a transition into
    LEADER_AWAITING_REGISTRATION or ACTIVE) → leader; a transition into DEAD → stopped;
    lost leadership, or a transition into a starting state (a fresh start) → follower.
    A transition logged "(not allowed)" did not happen and counts for nothing."""
    verdict = "unknown"
    for line in text.splitlines():
        m = TRANSITION_RE.search(line)
        if ELECTED in line:
            verdict = "leader"
        elif LOST in line:
            verdict = "follower"
        elif m is not None and m.group(3) is None:
            to = m.group(2)
            if to in _LEADING_STATES:
                verdict = "leader"
            elif to == "DEAD":
                verdict = "stopped"
            elif to in _STARTING_STATES:
                verdict = "follower"
    return verdict


def log_command(
    cluster: Cluster, scheduler: Scheduler, lines: int, log_path: str | None = None
) -> str:
    """The command that prints the last `lines` lines of a scheduler's log (see
    runbook.hostlog: no package writes a log file of its own, so journald by default)."""
    return log_read_command(cluster, scheduler, lines, log_path)


def _unreadable(r: HostResult | None, journal: bool) -> str | None:
    """Why a host's log could not be read, or None when its output is the log. From
    the journal, journalctl's permission hint (exit 0) and sudo's refusals say why."""
    if r is None:
        return "no result"
    if journal:
        out = r.stdout.splitlines() + r.stderr.splitlines()
        denied = [x.strip() for x in out if x.strip().startswith(JOURNAL_DENIED)]
        sudo = [x.strip() for x in r.stderr.splitlines() if x.startswith("sudo: ")]
        if denied or sudo:
            return (denied or sudo)[0]
    if r.ok:
        return None
    tail = [x.strip() for x in r.stderr.splitlines() if x.strip()][-1:]
    return r.error or (tail or [f"exit {r.exit_status}"])[0]


async def _from_logs(
    cluster: Cluster, remote: Remote, log_path: str | None, lines: int, timeout: float
) -> tuple[dict[str, str], list[str], bool]:
    """(cells, leaders, any host readable). Without `log_path`, each scheduler's
    `scheduler_log` from the cluster file, else journald."""
    commands = {s.host: log_command(cluster, s, lines, log_path) for s in cluster.schedulers}
    try:
        results = await remote.run(commands, timeout=timeout)
    except Exception as exc:  # the executor itself failed: no host readable
        cell = f"unreadable: {str(exc).strip() or type(exc).__name__}"
        return {s.host: cell for s in cluster.schedulers}, [], False
    cells: dict[str, str] = {}
    leaders: list[str] = []
    readable = False
    for s in cluster.schedulers:
        r = results.get(s.host)
        why = _unreadable(r, commands[s.host].startswith("sudo -n journalctl "))
        if why is not None or r is None:
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
    zk: ZkReader | None = None,
) -> LeaderReport:
    """Ask every configured source at once; see the module docstring for the policy.
    `zk`: the cluster's reader, reused across calls (else one is opened and closed)."""

    _check_reader(cluster, zk)

    async def nothing() -> None:
        return None

    vars_task = _from_vars(cluster, probe, state, vars_timeout)
    zk_task = _from_zookeeper(cluster, zk_timeout, zk) if cluster.zk_endpoints else nothing()
    logs_task = (
        _from_logs(cluster, remote, log_path, log_lines, log_timeout) if remote else nothing()
    )
    (vars_cells, vars_leaders), zk_got, logs = await asyncio.gather(vars_task, zk_task, logs_task)

    table: dict[str, dict[str, str]] = {s.host: {} for s in cluster.schedulers}
    by_source: dict[str, str | None] = {}
    problems: list[str] = []
    abstained: dict[str, str] = {}
    available: dict[str, str | None] = {}  # the sources that could be read and can tell

    for host, cell in vars_cells.items():
        table[host]["vars"] = cell
    if len(vars_leaders) > 1:
        problems.append(_many("vars", vars_leaders))
    by_source["vars"] = vars_leaders[0] if len(vars_leaders) == 1 else None
    if any(not c.startswith("down:") for c in vars_cells.values()):
        available["vars"] = by_source["vars"]
    else:
        problems.append("/vars unavailable: no scheduler answered")

    if zk_got is not None:
        verdict, zk_error = zk_got
        for host, cell in verdict.cells.items():
            table[host]["zookeeper"] = cell
        by_source["zookeeper"] = verdict.leader
        if zk_error is not None:
            problems.append(f"ZooKeeper {zk_error}")
        elif verdict.cannot_tell is not None:
            abstained["zookeeper"] = verdict.cannot_tell
        else:
            available["zookeeper"] = verdict.leader

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
        if available or abstained:
            problems.append("no leader")
    elif len(named) > 1 or None in available.values():
        said = [
            f"{SOURCE_NAMES[s]} names {v if v is not None else 'no leader'}"
            for s, v in available.items()
        ]
        problems.append(", ".join(said))
    leader = next(iter(named)) if len(named) == 1 and not problems else None
    return LeaderReport(
        table=table, by_source=by_source, leader=leader, problems=problems, abstained=abstained
    )


async def detector(
    cluster: Cluster,
    probe: VarsProbe,
    remote: Remote,
    state: str,
    *,
    zk: ZkReader | None = None,
) -> LeaderReport:
    """The engine's leader port: every source the cluster file configures."""
    return await detect_leader(cluster, probe, remote, state=state, zk=zk)


# --------------------------------------------------------------------------- preflight


def _endpoint_problem(cluster: Cluster) -> str | None:
    for host, (address, port) in _endpoints(cluster).items():
        if not address or not 1 <= port <= 65535:
            return f"{host}: no usable /vars endpoint ({address!r}, port {port})"
    return None


async def check_sources(
    cluster: Cluster,
    probe: VarsProbe,
    remote: Remote | None,
    *,
    zk: ZkReader | None = None,
    zk_timeout: float = 3.0,
    log_lines: int = 1,
    log_timeout: float = 10.0,
) -> dict[str, str | None]:
    """For prep.preflight: each configured source → None when it can be used, else the
    one-line reason it cannot. /vars only needs well-formed endpoints (before the first
    stop, no answer from the schedulers is no reason to stop: `probe` is not asked);
    ZooKeeper must answer; at least one host's log must be readable (else the first
    host's reason)."""
    _check_reader(cluster, zk)

    async def zookeeper() -> str | None:
        try:
            await _read_zk(cluster, zk_timeout, zk)
        except (ZkUnavailable, TimeoutError) as exc:
            why = str(exc) or f"no answer from {cluster.zk_endpoints} within {zk_timeout:g}s"
            return f"ZooKeeper unavailable: {why}"
        return None

    async def logs() -> str | None:
        assert remote is not None
        cells, _, readable = await _from_logs(cluster, remote, None, log_lines, log_timeout)
        if readable:
            return None
        first = cluster.schedulers[0].host
        return f"no host's log readable ({first}: {cells[first].removeprefix('unreadable: ')})"

    checks: dict[str, Any] = {}
    if cluster.zk_endpoints:
        checks["zookeeper"] = zookeeper()
    if remote is not None:
        checks["logs"] = logs()
    found = await asyncio.gather(*checks.values())
    return {"vars": _endpoint_problem(cluster), **dict(zip(checks, found, strict=True))}
