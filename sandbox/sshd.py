"""The SSH server of a simulated host (asyncssh).

Public-key authentication only, for the sandbox's one client key and its one user.
Every exec request runs in a real shell (`bash -c`) in the host's directory, with the
host's stand-ins first on PATH. A client that goes away takes its command with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import asyncssh

from sandbox.layout import HostInfo, SandboxInfo
from sandbox.service import host_environment, kill_group


class _Server(asyncssh.SSHServer):  # type: ignore[misc]
    """Only `user`, only with the sandbox's client key."""

    def __init__(self, user: str, authorized: asyncssh.SSHAuthorizedKeys) -> None:
        self.user = user
        self.authorized = authorized
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def begin_auth(self, username: str) -> bool:
        # Authentication is always required; other users get no authorized key at all.
        if username == self.user and self.conn is not None:
            self.conn.set_authorized_keys(self.authorized)
        return True

    def password_auth_supported(self) -> bool:
        return False


def ensure_host_key(path: Path) -> asyncssh.SSHKey:
    """The host's key, made once and then kept, so known_hosts stays true."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    path.chmod(0o600)
    key.write_public_key(str(path) + ".pub")
    return key


class HostSshd:
    def __init__(self, info: SandboxInfo, host: HostInfo, user: str, client_pub: Path) -> None:
        self.info = info
        self.host = host
        self.user = user
        self.client_pub = client_pub
        self.server: asyncssh.SSHAcceptor | None = None
        self.running: set[asyncio.subprocess.Process] = set()

    async def start(self) -> None:
        key = ensure_host_key(self.host.paths.ssh_host_key)
        authorized = asyncssh.import_authorized_keys(self.client_pub.read_text())
        self.server = await asyncssh.create_server(
            lambda: _Server(self.user, authorized),
            self.host.address,
            self.host.ssh_port,
            server_host_keys=[key],
            process_factory=self._handle,
            encoding=None,
            allow_pty=False,
            x11_forwarding=False,
            agent_forwarding=False,
            reuse_address=True,
        )

    async def close(self) -> None:
        for proc in list(self.running):
            kill_group(proc)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, process: asyncssh.SSHServerProcess) -> None:
        command = process.command
        argv = ["bash", "-c", command] if command else ["bash", "-s"]
        env = host_environment(self.info, self.host, user=self.user)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(self.host.paths.root),
            env=env,
            start_new_session=True,
        )
        self.running.add(proc)
        try:
            # send_eof=False: the first stream to end must not close the channel for the other.
            await process.redirect(
                stdin=proc.stdin, stdout=proc.stdout, stderr=proc.stderr, send_eof=False
            )
            exited = asyncio.ensure_future(proc.wait())
            closed = asyncio.ensure_future(process.channel.wait_closed())
            await asyncio.wait({exited, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if not exited.done():
                exited.cancel()
                return  # the client went away: `finally` ends the command
            status = exited.result()
            # Let the output still in the pipes reach the client before the exit status.
            await _forwarded(proc)
            await _drain(process)
            process.exit(status if status >= 0 else 128 - status)
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            pass
        finally:
            # The client left (or abort): nothing keeps running behind its back.
            kill_group(proc, signal.SIGTERM)
            with contextlib.suppress(ProcessLookupError):
                await asyncio.sleep(0)
                kill_group(proc)
            self.running.discard(proc)


async def _forwarded(proc: asyncio.subprocess.Process) -> None:
    """Wait until asyncssh has read everything the command wrote (bounded)."""
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(2000):
        if proc.stdout.at_eof() and proc.stderr.at_eof():
            return
        await asyncio.sleep(0.005)


async def _drain(process: asyncssh.SSHServerProcess) -> None:
    with contextlib.suppress(Exception):
        await process.stdout.drain()
        await process.stderr.drain()
