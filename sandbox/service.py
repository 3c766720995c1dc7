"""The systemd stand-in: one `aurora-scheduler` unit per host, and the control server the
`systemctl` stand-in talks to.

The unit behaves like the one in Aurora's packages (aurora-packaging
specs/debian/aurora-scheduler.service, specs/rpm/aurora-scheduler.service: `User=aurora`,
`Restart=always`, no `Type=` so `simple`, no output redirection): a scheduler that exits is
started again after `restart_sec` unless it was stopped. `stop` is synchronous (SIGTERM,
then SIGKILL after a grace period), `start` returns once the process runs.

The unit's stdout and stderr go to the journal, as systemd sends them to journald: the
host's `var/log/journal/aurora-scheduler.journal` (see sandbox.journalctl), one line per
log line in journald's `short` shape, `Mon DD HH:MM:SS host aurora-scheduler-startup[PID]:
message`, in the host's zone. With `log_file` (`--log-file`) they go to
`var/log/aurora/aurora-scheduler.log` instead, as they did before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from sandbox.layout import UNIT, HostInfo, SandboxInfo

STOP_GRACE = 10.0
# The syslog identifier journald gives the unit's output: ExecStart's basename.
IDENTIFIER = "aurora-scheduler-startup"


def _die_with_parent() -> None:
    """Children get SIGKILL when the sandbox dies, even by kill -9 (Linux only)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def host_environment(info: SandboxInfo, host: HostInfo, user: str) -> dict[str, str]:
    """The environment of every process on a simulated host (TZ when the sandbox has a
    zone: the scheduler's JVM, and so its backup names, follow it)."""
    paths = host.paths
    project = str(Path(__file__).resolve().parent.parent)
    env = {
        "PATH": f"{paths.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(paths.home),
        "TMPDIR": str(paths.tmp),
        "USER": user,
        "LOGNAME": user,
        "LANG": "C.UTF-8",
        "PYTHONPATH": project,
        "PYTHONDONTWRITEBYTECODE": "1",
        "AURORA_CONFIG_ROOT": str(paths.aurora_config_root),
        "SANDBOX_DIR": info.dir,
        "SANDBOX_HOST": host.name,
        "SANDBOX_ADDRESS": host.address,
        "SANDBOX_CONTROL": info.control,
        "SANDBOX_USER": user,
    }
    if info.tz:
        env["TZ"] = info.tz
    return env


def journal_prefix(host: str, pid: int, when: datetime) -> str:
    """journald's `short` output up to the message: `Dec 01 22:30:01 host ident[pid]: `."""
    return f"{when:%b %d %H:%M:%S} {host} {IDENTIFIER}[{pid}]: "


async def pump_journal(
    source: asyncio.StreamReader, journal: Path, host: str, pid: int, tz: str
) -> None:
    """Every line the unit writes, into the host's journal with its prefix (journald
    stamps a line when it arrives)."""
    zone = ZoneInfo(tz) if tz else None
    journal.parent.mkdir(parents=True, exist_ok=True)
    with journal.open("ab") as out:
        while True:
            try:
                line = await source.readline()
            except ValueError:  # a line longer than the limit: take what is buffered
                line = await source.read(1 << 20)
            if not line:
                return
            now = datetime.now(zone) if zone else datetime.now()
            text = line.rstrip(b"\n").decode(errors="replace")
            out.write((journal_prefix(host, pid, now) + text + "\n").encode())
            out.flush()


def kill_group(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    """Signal a child started with start_new_session=True and everything it started."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


class Unit:
    """`aurora-scheduler.service` on one host."""

    def __init__(self, info: SandboxInfo, host: HostInfo) -> None:
        self.info = info
        self.host = host
        self.wanted = False
        self.proc: asyncio.subprocess.Process | None = None
        self.state = "inactive"
        self.restarts = 0
        self._watch: asyncio.Task[None] | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.wanted = True
        if self.proc is None or self.proc.returncode is not None:
            if self._watch is not None and not self._watch.done():
                # Waiting out RestartSec: start now instead.
                self._watch.cancel()
            await self._spawn()

    async def stop(self) -> None:
        self.wanted = False
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        proc = self.proc
        if proc is not None and proc.returncode is None:
            self.state = "deactivating"
            kill_group(proc, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                kill_group(proc, signal.SIGKILL)
                await proc.wait()
        self.proc = None
        self.state = "inactive"

    async def _spawn(self) -> None:
        paths = self.host.paths
        if self.info.log_file:
            paths.scheduler_log.parent.mkdir(parents=True, exist_ok=True)
            with paths.scheduler_log.open("ab") as log:
                self.proc = await self._exec(log, log)
        else:
            self.proc = await self._exec(asyncio.subprocess.PIPE, asyncio.subprocess.STDOUT)
            assert self.proc.stdout is not None
            pump = asyncio.create_task(
                pump_journal(
                    self.proc.stdout, paths.journal, self.host.name, self.proc.pid, self.info.tz
                )
            )
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)
        self.state = "active"
        self._watch = asyncio.create_task(self._supervise(self.proc))

    async def _exec(
        self, stdout: BinaryIO | int, stderr: BinaryIO | int
    ) -> asyncio.subprocess.Process:
        paths = self.host.paths
        return await asyncio.create_subprocess_exec(
            "bash",
            str(paths.startup_script),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=str(paths.root),
            env=host_environment(self.info, self.host, user="aurora"),
            start_new_session=True,
            preexec_fn=_die_with_parent,
            limit=1 << 20,
        )

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        if not self.wanted or self.proc is not proc:
            return
        # Restart=always: come back after RestartSec.
        self.state = "activating"
        await asyncio.sleep(self.info.restart_sec)
        if self.wanted and self.proc is proc:
            self.restarts += 1
            await self._spawn()

    def is_active(self) -> bool:
        return self.state == "active" and self.proc is not None and self.proc.returncode is None


def _unit_name(arg: str) -> str:
    return arg.removesuffix(".service")


class ControlServer:
    """Answers the `systemctl` stand-in: one JSON request line, one JSON answer line."""

    def __init__(self, units: dict[str, Unit]) -> None:
        self.units = units
        self.server: asyncio.Server | None = None

    async def start(self, address: str = "127.0.0.1") -> str:
        self.server = await asyncio.start_server(self._serve, address, 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"{address}:{port}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            answer = await self.handle(request["host"], request["verb"], request["unit"])
        except Exception as exc:  # an answer for any request, however broken
            answer = {"code": 1, "out": "", "err": f"systemctl stand-in: {exc}\n"}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            writer.close()

    async def handle(self, host: str, verb: str, unit_arg: str) -> dict[str, object]:
        unit = self.units.get(host)
        name = _unit_name(unit_arg)
        if unit is None or name != UNIT:
            if verb == "is-active":
                return {"code": 3, "out": "inactive\n", "err": ""}
            return {
                "code": 5,
                "out": "",
                "err": f"Failed to {verb} {name}.service: Unit {name}.service not found.\n",
            }
        if verb == "start":
            await unit.start()
            return {"code": 0, "out": "", "err": ""}
        if verb == "stop":
            await unit.stop()
            return {"code": 0, "out": "", "err": ""}
        if verb == "restart":
            await unit.stop()
            await unit.start()
            return {"code": 0, "out": "", "err": ""}
        if verb == "is-active":
            state = "active" if unit.is_active() else unit.state
            if state == "active" and not unit.is_active():
                state = "activating"
            return {"code": 0 if state == "active" else 3, "out": state + "\n", "err": ""}
        if verb == "status":
            pid = unit.proc.pid if unit.proc and unit.proc.returncode is None else None
            text = (
                f"● {UNIT}.service - Aurora Scheduler\n"
                f"     Loaded: loaded (/lib/systemd/system/{UNIT}.service; enabled)\n"
                f"     Active: {unit.state}\n" + (f"   Main PID: {pid}\n" if pid else "")
            )
            return {"code": 0 if unit.is_active() else 3, "out": text, "err": ""}
        return {"code": 1, "out": "", "err": f"Unknown command verb {verb}.\n"}
