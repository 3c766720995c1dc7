"""Leader election of the simulated schedulers, and how other processes read its state.

Two implementations behind one interface (`Election`), chosen by SandboxInfo.zk_endpoints:

- ZooKeeper (kazoo), laid out the way Aurora's Curator code does it (docs/aurora-notes.md §F4): every
  scheduler with prepared storage creates an EPHEMERAL_SEQUENTIAL candidate node
  `<serverset_path>/_c_<uuid4>-lock-NNNNNNNNNN` holding its hostname; the lowest sequence
  number leads. Only a leader that registered with Mesos (ACTIVE) writes the `member_`
  node clients resolve. So while the schedulers are disabled, only the candidate nodes
  say who leads.
- Local (no ZooKeeper): an fcntl.flock on DIR/election/leader.lock. The holder writes its
  hostname to DIR/election/leader and, once ACTIVE, its member JSON to member.json.
  A lock dies with its process, so the files are trusted only while the lock is held:
  readers test the lock without blocking (`local_leader`, `local_member`).

kazoo is imported only when ZooKeeper is used: the scheduler must start fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, cast

from sandbox.layout import SandboxInfo

LOCK_FILE = "leader.lock"
LEADER_FILE = "leader"
MEMBER_FILE = "member.json"
CANDIDATE_RE = re.compile(r"^_c_[0-9a-f-]{36}-lock-(\d+)$")
MEMBER_RE = re.compile(r"^member_(\d+)$")
POLL = 0.2

Member = dict[str, Any]


class ElectionUnavailable(Exception):
    """The election's backing store (ZooKeeper) cannot be reached."""


def member_json(host: str, port: int, endpoint: str = "http") -> Member:
    """Aurora's ServiceInstance JSON, keys in Gson's order (docs/aurora-notes.md §F4)."""
    return {
        "serviceEndpoint": {"host": host, "port": port},
        "additionalEndpoints": {endpoint: {"host": host, "port": port}},
        "status": "ALIVE",
    }


def encode_member(member: Member) -> bytes:
    """Compact, like Gson: what lands in the member_ node or member.json."""
    return json.dumps(member, separators=(",", ":")).encode()


def member_host(member: Member) -> str | None:
    endpoint = member.get("serviceEndpoint")
    return str(endpoint["host"]) if isinstance(endpoint, dict) and "host" in endpoint else None


def _sequence(name: str) -> int:
    return int(name.rsplit("-", 1)[-1].rsplit("_", 1)[-1])


def candidates(children: list[str]) -> list[str]:
    """Curator lock nodes among a serverset's children, lowest sequence (the leader) first."""
    return sorted((c for c in children if CANDIDATE_RE.match(c)), key=_sequence)


def members(children: list[str]) -> list[str]:
    """`member_<int>` nodes (the only ones a twitter-commons ServerSet considers), in order."""
    return sorted((c for c in children if MEMBER_RE.match(c)), key=_sequence)


# ---------------------------------------------------------------------------- local election


def _lock_held(lock_path: Path) -> bool:
    """True when some process holds the election lock. Taking it to test is released at once."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def local_leader(election_dir: Path) -> str | None:
    if not _lock_held(election_dir / LOCK_FILE):
        return None
    try:
        name = (election_dir / LEADER_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def local_member(election_dir: Path) -> Member | None:
    """The advertised member, only when its writer still leads (a stale file means nothing)."""
    leader = local_leader(election_dir)
    if leader is None:
        return None
    try:
        member = json.loads((election_dir / MEMBER_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(member, dict) or member_host(member) != leader:
        return None
    return member


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------ ZooKeeper election


def _zk_connect(hosts: str, timeout: float, session_timeout: float = 10.0) -> Any:
    import logging

    from kazoo.client import KazooClient

    # kazoo logs every failed connection attempt; the callers report failures themselves.
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    client = KazooClient(hosts=hosts, timeout=session_timeout)
    try:
        client.start(timeout=timeout)
    except Exception as exc:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
        raise ElectionUnavailable(
            f"Failed to connect to ZooKeeper at {hosts} within {timeout:g} seconds."
        ) from exc
    return client


def _zk_close(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.stop()
        client.close()


def _zk_children(client: Any, path: str) -> list[str]:
    from kazoo.exceptions import NoNodeError

    try:
        return cast(list[str], client.get_children(path))
    except NoNodeError:
        return []


def _zk_leader_of(client: Any, path: str) -> str | None:
    from kazoo.exceptions import NoNodeError

    for node in candidates(_zk_children(client, path)):
        try:
            data, _ = client.get(f"{path}/{node}")
        except NoNodeError:  # it went away between the listing and the read
            continue
        return cast(bytes, data).decode() or None
    return None


def _zk_member_of(client: Any, path: str) -> Member | None:
    from kazoo.exceptions import NoNodeError

    for node in members(_zk_children(client, path)):
        try:
            data, _ = client.get(f"{path}/{node}")
            member = json.loads(data)
        except (NoNodeError, ValueError):
            continue
        if isinstance(member, dict):
            return member
    return None


def zk_leader(hosts: str, path: str, timeout: float = 5.0) -> str | None:
    client = _zk_connect(hosts, timeout)
    try:
        return _zk_leader_of(client, path)
    finally:
        _zk_close(client)


def zk_member(hosts: str, path: str, timeout: float = 5.0) -> Member | None:
    client = _zk_connect(hosts, timeout)
    try:
        return _zk_member_of(client, path)
    finally:
        _zk_close(client)


# ------------------------------------------------------------------ for any sandbox process


def current_leader(info: SandboxInfo) -> str | None:
    """The host that won the election (ACTIVE or not), or None. May raise ElectionUnavailable."""
    if info.zk_endpoints:
        return zk_leader(info.zk_endpoints, info.serverset_path)
    return local_leader(info.election_dir)


def current_member(info: SandboxInfo) -> Member | None:
    """The advertised leader (only an ACTIVE one advertises), or None. May raise
    ElectionUnavailable."""
    if info.zk_endpoints:
        return zk_member(info.zk_endpoints, info.serverset_path)
    return local_member(info.election_dir)


# ----------------------------------------------------------------- the scheduler's side


class Election(ABC):
    """One scheduler's part in the election."""

    kind: str

    @abstractmethod
    async def connect(self) -> None:
        """Get ready to campaign; raises ElectionUnavailable when the store is unreachable."""

    @abstractmethod
    async def campaign(self) -> None:
        """Return once this scheduler leads."""

    @abstractmethod
    async def lost(self) -> None:
        """Return when leadership held is lost (never, for a healthy leader)."""

    @abstractmethod
    async def advertise(self, member: Member) -> None:
        """Publish the leader's endpoint (done on reaching ACTIVE)."""

    @abstractmethod
    async def member(self) -> Member | None:
        """The advertised leader as this scheduler sees it (for redirects, /leaderhealth)."""

    @abstractmethod
    def close(self) -> None:
        """Leave the election at once (synchronous: called right before the process exits)."""

    def vars(self) -> dict[str, int]:
        return {}


class LocalElection(Election):
    kind = "local"

    def __init__(self, election_dir: Path, host: str) -> None:
        self.dir = election_dir
        self.host = host
        self.fd: int | None = None
        self.leading = False

    async def connect(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)

    async def campaign(self) -> None:
        assert self.fd is not None, "connect() first"
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(POLL)
        self.leading = True
        # A leader killed with SIGKILL leaves its files behind: they are ours to replace.
        (self.dir / MEMBER_FILE).unlink(missing_ok=True)
        _write_atomic(self.dir / LEADER_FILE, self.host.encode() + b"\n")

    async def lost(self) -> None:
        """Only if someone removed or replaced the lock file: then another could lock anew."""
        assert self.fd is not None
        held = os.fstat(self.fd).st_ino
        while True:
            await asyncio.sleep(1.0)
            try:
                if os.stat(self.dir / LOCK_FILE).st_ino != held:
                    return
            except FileNotFoundError:
                return

    async def advertise(self, member: Member) -> None:
        _write_atomic(self.dir / MEMBER_FILE, encode_member(member))

    async def member(self) -> Member | None:
        return local_member(self.dir)

    def close(self) -> None:
        if self.fd is None:
            return
        if self.leading:
            with contextlib.suppress(OSError):
                (self.dir / MEMBER_FILE).unlink(missing_ok=True)
                if (self.dir / LEADER_FILE).read_text().strip() == self.host:
                    (self.dir / LEADER_FILE).unlink()
        os.close(self.fd)  # releases the lock
        self.fd = None
        self.leading = False


class ZkElection(Election):
    kind = "zookeeper"

    def __init__(self, hosts: str, path: str, host: str, session_timeout: float) -> None:
        self.hosts = hosts
        self.path = path.rstrip("/") or "/"
        self.host = host
        self.session_timeout = session_timeout
        self.client: Any = None
        self.node: str | None = None
        self.state = "LOST"
        self.leading = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._lost = asyncio.Event()

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.client = await asyncio.to_thread(
            _zk_connect, self.hosts, 5.0, max(self.session_timeout, 1.0)
        )
        self.state = "CONNECTED"
        self.client.add_listener(self._on_state)

    def _on_state(self, state: str) -> None:
        """kazoo's thread: remember the state, wake the loop on LOST (session gone)."""
        self.state = str(state)
        if self.state == "LOST" and self._loop is not None:
            self._loop.call_soon_threadsafe(self._lost.set)
        self._wake()

    def _wake(self, *_: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    def _candidate_children(self) -> list[str]:
        from kazoo.exceptions import NoNodeError

        try:
            children = self.client.get_children(self.path, watch=self._wake)
        except NoNodeError:  # nobody campaigned yet: creating the candidate makes the path
            return []
        return candidates(cast(list[str], children))

    def _create_candidate(self) -> str:
        created = self.client.create(
            f"{self.path}/_c_{uuid.uuid4()}-lock-",
            self.host.encode(),
            ephemeral=True,
            sequence=True,
            makepath=True,
        )
        return str(created).rsplit("/", 1)[-1]

    async def campaign(self) -> None:
        from kazoo.exceptions import KazooException

        while True:
            self._changed.clear()
            try:
                children = await asyncio.to_thread(self._candidate_children)
                if self.node not in children:  # first round, or the session expired
                    self.node = await asyncio.to_thread(self._create_candidate)
                    continue
                if children[0] == self.node:
                    self.leading = True
                    self._lost.clear()
                    return
            except KazooException:
                pass  # connection trouble: kazoo reconnects, try again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)

    async def lost(self) -> None:
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), 2.0)
            if self.state == "CONNECTED":
                exists = await asyncio.to_thread(self.client.exists, f"{self.path}/{self.node}")
                if exists is None:
                    return

    async def advertise(self, member: Member) -> None:
        await asyncio.to_thread(
            self.client.create,
            f"{self.path}/member_",
            encode_member(member),
            ephemeral=True,
            sequence=True,
            makepath=True,
        )

    async def member(self) -> Member | None:
        if self.client is None or self.state != "CONNECTED":
            return None
        try:
            return await asyncio.to_thread(_zk_member_of, self.client, self.path)
        except Exception:
            return None

    def close(self) -> None:
        """Closing the session removes the ephemeral candidate and member nodes."""
        if self.client is not None:
            _zk_close(self.client)
            self.client = None
        self.leading = False

    def vars(self) -> dict[str, int]:
        return {f"zk_connection_state_{s}": int(self.state == s) for s in ("CONNECTED",)}
