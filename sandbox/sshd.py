"""The SSH server of a simulated host (asyncssh).

Public-key authentication only, for the sandbox's one client key and its one user.
Every exec request runs in a real shell (`bash -c`) in the host's directory, with the
host's stand-ins first on PATH. A client that goes away takes its command with it.
Each command is noted, before it runs, as one JSON line of `DIR/ssh/commands.jsonl`
(`{"host", "command", "at"}`): the record of everything the bot sent, for a game day's
review and for tests that hold what ran to what a person was shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

import asyncssh

from sandbox.layout import HostInfo, SandboxInfo
from sandbox.service import host_environment, kill_group


class _Server(asyncssh.SSHServer):
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

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        self._note(command or "")
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
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        # Streams are pumped by hand, not with process.redirect(): a channel the client
        # closes early must only end this command, never the whole connection.
        feeder = asyncio.ensure_future(_feed(process.stdin, proc.stdin))
        pumps = asyncio.ensure_future(
            asyncio.gather(_pump(proc.stdout, process.stdout), _pump(proc.stderr, process.stderr))
        )
        exited = asyncio.ensure_future(proc.wait())
        closed = asyncio.ensure_future(process.channel.wait_closed())
        try:
            await asyncio.wait({exited, closed}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pumps), 10)
                status = exited.result()
                with contextlib.suppress(Exception):
                    process.exit(status if status >= 0 else 128 - status)
        finally:
            # The client left (or abort): nothing keeps running behind its back.
            kill_group(proc, signal.SIGTERM)
            kill_group(proc)
            for task in (feeder, pumps, exited, closed):
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(feeder, pumps, exited, closed, return_exceptions=True)
            self.running.discard(proc)

    def _note(self, command: str) -> None:
        """One line of the command log, written whole before the command starts."""
        path = self.info.commands_file
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"host": self.host.name, "command": command, "at": time.time()}
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


async def _pump(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
    with contextlib.suppress(Exception):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()


async def _feed(source: asyncssh.SSHReader[bytes], sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except Exception:  # the command stopped reading, or the client went away
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()
