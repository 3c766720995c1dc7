"""Running shell commands on a cluster's scheduler hosts over SSH (asyncssh).

`SshExecutor` is the only way the bot touches a scheduler host. Its rules follow from
what a restore needs:

* All hosts at once. A restore stops, edits and starts every scheduler; running the
  hosts one after another would make the slowest (or an unreachable) host hold up the
  rest. Each host has its own connect and command timeout, so a bad host fails *its*
  result and nothing else.
* One connection per host, opened on first use and kept for the executor's life. A
  walk-through runs dozens of small commands; a fresh SSH handshake for each would
  cost more than the commands. A connection that died is opened again on next use.
* Host keys are always checked against the cluster file's known_hosts, never learnt:
  the bot runs `sudo systemctl stop` on whatever answers, so a changed key must stop
  it. Only the cluster file's key, user and known_hosts count; the ssh agent and
  ~/.ssh/config of whoever runs the bot are ignored, so the bot behaves the same on
  every machine.
* Abort means abort: when the task awaiting `run()` is cancelled (the abort button) or
  a command times out, the command's channel is closed (after a TERM signal, for
  OpenSSH servers, which do not end a command whose channel closes), so nothing keeps
  running on a host behind the operators' backs.
* A failure is one clear line (`HostResult.error`) an operator can act on, e.g.
  "host key for scheduler-1 ([10.0.0.1]:22) is not in /etc/aurora-restore/known_hosts".
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import shlex
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import asyncssh

from bot import metrics
from runbook.clusters import Cluster, Scheduler, parse_duration
from runbook.errors import (
    AuthFailed,
    CommandTimeout,
    HostKeyRejected,
    HostUnreachable,
    RemoteError,
)

# The result type is the engine's (`runbook.ports`), so this executor is its `Remote`.
from runbook.ports import HostResult, OnResult

__all__ = ["HostResult", "OnResult", "SshError", "SshExecutor"]

log = logging.getLogger(__name__)

# OpenSSH's sshd allows 10 sessions (channels) per connection by default (MaxSessions);
# concurrent runs on one host wait for a free session instead of failing to open one.
MAX_SESSIONS_PER_HOST = 8
# How long a cancelled run waits for on_result to take its "cancelled" results.
CANCEL_REPORT_GRACE = 2.0
# A connection that stops answering (host gone, network cut) is noticed and dropped.
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 3
# AES-GCM first: asyncssh does chacha20-poly1305 in Python around per-packet cipher
# objects, AES-GCM in one call with AES-NI, which halves the CPU per command
# (benchmarks/ssh_fanout.py: 27 ms -> 13 ms client CPU to run `true` on 50 hosts).
# Same set as asyncssh's defaults, which OpenSSH servers all accept; only the order.
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


# What `read_file` raises: runbook.errors.RemoteError (or the subclass that says what
# failed); the old name stays for the callers that know it.
SshError = RemoteError


class _HostFailure(Exception):
    """Internal: the host could not be used; the message is the `HostResult.error`,
    `kind` the runbook.errors class `read_file` raises for it."""

    def __init__(self, message: str, kind: type[RemoteError] = RemoteError) -> None:
        super().__init__(message)
        self.kind = kind


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _endpoint(s: Scheduler) -> str:
    """host:port, as an operator reads it in a one-line connect error."""
    return f"{s.connect_address}:{s.ssh_port}"


def _where(s: Scheduler) -> str:
    """How OpenSSH names the endpoint in known_hosts: `addr` or `[addr]:port`."""
    return s.connect_address if s.ssh_port == 22 else f"[{s.connect_address}]:{s.ssh_port}"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


@dataclass
class _Raw:
    """A host's outcome before decoding: `read_file` needs the bytes of stdout."""

    exit_status: int | None
    stdout: bytes
    stderr: bytes
    error: str | None
    # The command was cut off (timeout): its connection is not trusted any more.
    abandoned: bool = False
    # The runbook.errors class of `error` (read_file raises it).
    kind: type[RemoteError] = RemoteError


class _Link:
    """One host's connection and the sessions (channels) running on it.

    A connection on which a command was cut off (timeout, cancel) is *retired*: new
    commands get a fresh connection, and the old one is closed once its last session
    ends. A command that timed out may have done so because the connection itself
    stalled (a silent network cut takes the keepalives ~45 s to notice), and ending a
    session early must not put the host's other commands at risk.
    """

    def __init__(self, conn: asyncssh.SSHClientConnection) -> None:
        self.conn = conn
        self.sessions = asyncio.Semaphore(MAX_SESSIONS_PER_HOST)
        self.active = 0
        self.retired = False

    @property
    def usable(self) -> bool:
        return not self.retired and not self.conn.is_closed()

    def retire(self) -> None:
        self.retired = True
        if self.active == 0:
            self.conn.close()


class SshExecutor:
    """Runs commands on a cluster's schedulers; see the module docstring for the rules.

    Use as `async with SshExecutor(cluster) as ssh: await ssh.run({...})`, or call
    `close()` when done. One executor belongs to one event loop.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._connect_timeout = parse_duration(cluster.ssh.connect_timeout).total_seconds()
        self._command_timeout = parse_duration(cluster.ssh.command_timeout).total_seconds()
        self._links: dict[str, _Link] = {}
        self._retired: set[_Link] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._client_key: asyncssh.SSHKey | None = None
        self._closed = False

    @property
    def cluster(self) -> Cluster:
        return self._cluster

    def connections(self) -> dict[str, asyncssh.SSHClientConnection]:
        """The open connections by host (for diagnostics and tests)."""
        return {h: link.conn for h, link in self._links.items() if link.usable}

    async def __aenter__(self) -> SshExecutor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; commands still running on them end with it."""
        self._closed = True
        conns = [link.conn for link in [*self._links.values(), *self._retired]]
        self._links.clear()
        self._retired.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await conn.wait_closed()

    # -- running commands -------------------------------------------------------------

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        """Run `commands[host]` on each host at once; return each host's result.

        `commands` maps `Scheduler.host` to a complete shell command line (the caller
        quotes). `timeout` bounds each command once its host is connected (default: the
        cluster's `ssh.command_timeout`); connecting is bounded by `ssh.connect_timeout`.
        `stdin[host]`, when given, is sent to that host's command (binary-safe); every
        command gets end-of-file on stdin, so nothing waits for input that never comes.
        `on_result` is called with each host's result as soon as it is ready; an error in
        it is logged, never allowed to stop the other hosts' commands.

        Failures never raise: they are results with `error` set. Cancelling the task
        that awaits `run()` stops every command still running (its channel is closed),
        reports those hosts to `on_result` as "cancelled", and re-raises.
        """
        if self._closed:
            raise RuntimeError("this SshExecutor is closed")
        schedulers = {host: self._scheduler(host) for host in commands}
        limit = self._command_timeout if timeout is None else timeout
        feed = stdin or {}
        async with asyncio.TaskGroup() as tg:
            tasks = {
                host: tg.create_task(
                    self._host_task(s, commands[host], limit, feed.get(host), on_result),
                    name=f"ssh {host}",
                )
                for host, s in schedulers.items()
            }
        return {host: task.result() for host, task in tasks.items()}

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        """The bytes of a file on a host (`cat` over SSH); raises `SshError` on failure."""
        if self._closed:
            raise RuntimeError("this SshExecutor is closed")
        s = self._scheduler(host)
        limit = self._command_timeout if timeout is None else timeout
        raw = await self._run_raw(s, f"cat -- {shlex.quote(path)}", limit, None)
        if raw.error is None and raw.exit_status == 0:
            return raw.stdout
        lines = _decode(raw.stderr).strip().splitlines()
        reason = raw.error or (lines[-1] if lines else f"exit status {raw.exit_status}")
        raise raw.kind(host, reason, path=path)

    def _scheduler(self, host: str) -> Scheduler:
        try:
            return self._cluster.scheduler(host)
        except KeyError:
            raise ValueError(
                f"{host!r} is not a scheduler of cluster {self._cluster.name!r}"
            ) from None

    async def _host_task(
        self,
        s: Scheduler,
        command: str,
        timeout: float,
        stdin: bytes | None,
        on_result: OnResult | None,
    ) -> HostResult:
        started = time.monotonic()
        try:
            raw = await self._run_raw(s, command, timeout, stdin)
        except asyncio.CancelledError:
            # The channel is already closed (see _exec); tell the caller's progress view.
            cancelled = HostResult(s.host, None, "", "", time.monotonic() - started, "cancelled")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_REPORT_GRACE):
                    await self._report(on_result, cancelled)
            raise
        result = HostResult(
            host=s.host,
            exit_status=raw.exit_status,
            stdout=_decode(raw.stdout),
            stderr=_decode(raw.stderr),
            duration=time.monotonic() - started,
            error=raw.error,
        )
        metrics.observe_command(s.host, result.duration, result.error is None)
        await self._report(on_result, result)
        return result

    @staticmethod
    async def _report(on_result: OnResult | None, result: HostResult) -> None:
        if on_result is None:
            return
        try:
            maybe = on_result(result)
            if inspect.isawaitable(maybe):
                await maybe
        except Exception:
            log.exception("on_result failed for %s", result.host)

    async def _run_raw(
        self, s: Scheduler, command: str, timeout: float, stdin: bytes | None
    ) -> _Raw:
        """Connect (or reuse) and run; every failure becomes `_Raw.error`."""
        try:
            link, fresh = await self._link(s)
            try:
                return await self._exec_on(s, link, command, timeout, stdin)
            except _NotStarted:
                if fresh:
                    raise
                # A kept connection that died quietly: the command never started, so
                # it is safe to run it once on a new connection.
                self._retire(s.host, link)
                link, _ = await self._link(s)
                return await self._exec_on(s, link, command, timeout, stdin)
        except _NotStarted as exc:
            return _Raw(None, b"", b"", str(exc), kind=HostUnreachable)
        except _HostFailure as exc:
            return _Raw(None, b"", b"", str(exc), kind=exc.kind)

    async def _exec_on(
        self, s: Scheduler, link: _Link, command: str, timeout: float, stdin: bytes | None
    ) -> _Raw:
        """Run on `link`, counting the session so a retired link closes after the last."""
        async with link.sessions:
            link.active += 1
            try:
                raw = await self._exec(link.conn, command, timeout, stdin)
            except asyncio.CancelledError:
                self._retire(s.host, link)
                raise
            finally:
                link.active -= 1
                if link.retired and link.active == 0:
                    link.conn.close()
                    self._retired.discard(link)
            if raw.abandoned:
                self._retire(s.host, link)
            return raw

    async def _exec(
        self,
        conn: asyncssh.SSHClientConnection,
        command: str,
        timeout: float,
        stdin: bytes | None,
    ) -> _Raw:
        proc: asyncssh.SSHClientProcess[bytes] | None = None
        try:
            async with asyncio.timeout(timeout):
                try:
                    proc = await conn.create_process(command, encoding=None)
                except asyncssh.ChannelOpenError as exc:
                    raise _HostFailure(
                        f"cannot open an SSH session: {exc.reason}", HostUnreachable
                    ) from None
                except (asyncssh.DisconnectError, OSError) as exc:
                    raise _NotStarted(f"connection lost: {_reason(exc)}") from None
                assert proc is not None
                with contextlib.suppress(BrokenPipeError, ConnectionError, OSError):
                    # A command that exits without reading its input is not an error.
                    if stdin:
                        proc.stdin.write(stdin)
                        await proc.stdin.drain()
                    proc.stdin.write_eof()
                out, err = await proc.communicate()
        except TimeoutError:
            partial = _stop(proc)
            return _Raw(
                None,
                partial[0],
                partial[1],
                f"timed out after {_seconds(timeout)}",
                True,
                CommandTimeout,
            )
        except BaseException:
            # Cancelled (or anything unexpected): the remote command must not live on.
            _stop(proc)
            raise
        return self._finished(proc, out, err)

    @staticmethod
    def _finished(proc: asyncssh.SSHClientProcess[bytes], out: bytes, err: bytes) -> _Raw:
        code = proc.returncode
        if code is None:
            return _Raw(
                None, out, err, "connection lost before the command finished", kind=HostUnreachable
            )
        if code < 0:
            signal_info = proc.exit_signal
            name = signal_info[0] if signal_info else str(-code)
            try:
                number = signal.Signals[f"SIG{name}"].value
            except KeyError:
                number = -code if code != -1 else 0
            return _Raw(128 + number, out, err, f"killed by signal {name}")
        return _Raw(code, out, err, None)

    # -- connections ------------------------------------------------------------------

    async def _link(self, s: Scheduler) -> tuple[_Link, bool]:
        """The host's connection, opening one if needed; True when opened now.

        The per-host lock makes concurrent runs on one host share a single new
        connection instead of racing to open one each."""
        link = self._links.get(s.host)
        if link is not None and link.usable:
            return link, False
        async with self._locks.setdefault(s.host, asyncio.Lock()):
            link = self._links.get(s.host)
            if link is not None and link.usable:
                return link, False
            if link is not None:
                self._retire(s.host, link)
            conn = await self._open(s)
            if self._closed:
                conn.close()
                raise _HostFailure("the SSH executor was closed")
            link = self._links[s.host] = _Link(conn)
            return link, True

    def _retire(self, host: str, link: _Link) -> None:
        if self._links.get(host) is link:
            del self._links[host]
        link.retire()
        if link.active:
            self._retired.add(link)

    def _key(self) -> asyncssh.SSHKey:
        if self._client_key is None:
            path = self._cluster.ssh.key_path
            try:
                self._client_key = asyncssh.read_private_key(str(path))
            except OSError as exc:
                raise _HostFailure(
                    f"cannot read the SSH key {path}: {exc.strerror or exc}"
                ) from None
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise _HostFailure(f"cannot use the SSH key {path}: {exc}") from None
        return self._client_key

    def _known_hosts(self) -> asyncssh.SSHKnownHosts:
        """Read on every connect, so a fixed known_hosts counts without a restart."""
        path = self._cluster.ssh.known_hosts_path
        try:
            return asyncssh.read_known_hosts(str(path))
        except OSError as exc:
            raise _HostFailure(f"cannot read known_hosts {path}: {exc.strerror or exc}") from None
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise _HostFailure(f"known_hosts {path} is not valid: {exc}") from None

    async def _open(self, s: Scheduler) -> asyncssh.SSHClientConnection:
        key = self._key()
        known_hosts = self._known_hosts()
        ssh = self._cluster.ssh
        options: dict[str, Any] = {
            "username": ssh.user,
            "client_keys": [key],
            "known_hosts": known_hosts,
            # Nothing of the user running the bot: no agent, no ~/.ssh/config, no other
            # keys, no password or keyboard prompts, no X.509 trust store.
            "config": None,
            "agent_path": None,
            "agent_forwarding": False,
            "password": None,
            "password_auth": False,
            "kbdint_auth": False,
            "host_based_auth": False,
            "gss_auth": False,
            "encryption_algs": list(ENCRYPTION_ALGS),
            "preferred_auth": "publickey",
            "x509_trusted_certs": None,
            "keepalive_interval": KEEPALIVE_INTERVAL,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        }
        try:
            async with asyncio.timeout(self._connect_timeout):
                conn: asyncssh.SSHClientConnection = await asyncssh.connect(
                    s.connect_address, s.ssh_port, **options
                )
                return conn
        except asyncssh.HostKeyNotVerifiable:
            raise _HostFailure(self._host_key_error(s, known_hosts), HostKeyRejected) from None
        except TimeoutError:
            raise _HostFailure(
                f"ssh to {_endpoint(s)}: connect timed out after {_seconds(self._connect_timeout)}",
                HostUnreachable,
            ) from None
        except ConnectionRefusedError:
            raise _HostFailure(
                f"ssh to {_endpoint(s)}: connection refused", HostUnreachable
            ) from None
        except asyncssh.PermissionDenied:
            raise _HostFailure(
                f"permission denied for {ssh.user}@{s.host} with the key {ssh.key_path}",
                AuthFailed,
            ) from None
        except asyncssh.DisconnectError as exc:
            raise _HostFailure(f"SSH connection failed: {_reason(exc)}", HostUnreachable) from None
        except OSError as exc:
            raise _HostFailure(
                f"ssh to {_endpoint(s)}: {exc.strerror or exc}", HostUnreachable
            ) from None

    def _host_key_error(self, s: Scheduler, known_hosts: asyncssh.SSHKnownHosts) -> str:
        """Tell an unknown host (add its key) from a changed key (investigate)."""
        path = self._cluster.ssh.known_hosts_path
        addr = s.connect_address
        try:
            ip = str(ipaddress.ip_address(addr))
        except ValueError:
            ip = ""
        port = s.ssh_port if s.ssh_port != 22 else None
        matched = known_hosts.match(addr, ip, port)
        keys, ca_keys, revoked = matched[0], matched[1], matched[2]
        what = f"host key for {s.host} ({_where(s)})"
        if revoked and not keys:
            return f"{what} is revoked in {path}"
        if keys or ca_keys:
            return f"{what} does not match {path} (changed?)"
        return f"{what} is not in {path}"


class _NotStarted(Exception):
    """Internal: the session could not be opened on the connection; nothing ran."""


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _stop(proc: asyncssh.SSHClientProcess[bytes] | None) -> tuple[bytes, bytes]:
    """End a remote command: TERM (OpenSSH does not end a command whose channel
    closes), then close the channel (the sandbox's server kills on close). Returns
    the output received so far."""
    if proc is None:
        return b"", b""
    with contextlib.suppress(Exception):
        proc.send_signal("TERM")
    with contextlib.suppress(Exception):
        proc.close()
    try:
        out, err = proc.collect_output()
    except Exception:
        return b"", b""
    return bytes(out), bytes(err)
