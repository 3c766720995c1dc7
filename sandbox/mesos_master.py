"""The sandbox's Mesos master: the HTTP endpoints the bot reads to see what runs.

Modelled on the Mesos master's endpoints (mesos.apache.org/documentation/latest/endpoints/
master/tasks/, /frameworks/, /state/, /redirect/):

- `/master/tasks?framework_id=&limit=&offset=&order=`: `{"tasks": [...]}`, `limit`
  defaulting to 100, `order` asc or desc (the default); the framework's running tasks
  and, after them, its completed ones (the tasks a scheduler killed, TASK_KILLED);
- `/master/frameworks`: `{"frameworks": [...], "completed_frameworks": [],
  "unregistered_frameworks": []}`;
- `/master/state`: the master's own state, naming the leader (`leader`, `leader_info`);
- `/master/redirect`: 307 to the leading master (`//host:port`, as Mesos answers).

A master that is not the leader answers `/master/tasks`, `/master/frameworks` and
`/master/state` with 307 TEMPORARY_REDIRECT to the leader (the same path and query), as
Mesos does. The tasks are the sandbox's simulated ones (`DIR/mesos/tasks.json`) less those
in `killed.jsonl`; every task belongs to the framework the sandbox's schedulers register
as (sandbox.backups.framework_id). A task's name is its job key `role/env/name`, as
Aurora names the TaskInfo (apache/aurora src/main/java/org/apache/aurora/scheduler/mesos/
MesosTaskFactory.java: JobKeys.canonicalString). The sandbox's Aurora statuses map to
Mesos task states; PENDING and THROTTLED tasks (never launched on a real cluster) are
listed as TASK_STAGING so that what the master lists is what reconciliation can kill.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

MESOS_VERSION = "1.4.0"
DEFAULT_LIMIT = 100
STATES = {
    "ASSIGNED": "TASK_STAGING",
    "PENDING": "TASK_STAGING",
    "THROTTLED": "TASK_STAGING",
    "STARTING": "TASK_STARTING",
    "RUNNING": "TASK_RUNNING",
    "KILLING": "TASK_KILLING",
    "DRAINING": "TASK_RUNNING",
    "PREEMPTING": "TASK_KILLING",
    "RESTARTING": "TASK_KILLING",
    "PARTITIONED": "TASK_UNREACHABLE",
}


def mesos_task(t: dict[str, Any], framework: str, state: str) -> dict[str, Any]:
    """One task as /master/tasks lists it."""
    instance = t.get("instance", 0)
    return {
        "id": t["task_id"],
        "name": f"{t['role']}/{t['environment']}/{t['job']}",
        "framework_id": framework,
        "executor_id": f"thermos-{t['task_id']}",
        "slave_id": f"agent-{int(instance) % 40:02d}-S0",
        "state": state,
        "resources": {"cpus": 1.0, "mem": 512.0, "disk": 1024.0, "gpus": 0.0},
        "role": t["role"],
        "statuses": [{"state": state, "timestamp": 0.0}],
    }


@dataclass
class TaskSource:
    """The simulated tasks, read again only when tasks.json or killed.jsonl changed."""

    tasks_file: Path
    killed_file: Path
    framework: str
    _stamp: tuple[int, ...] = ()
    _tasks: list[dict[str, Any]] = field(default_factory=list)

    def _files_stamp(self) -> tuple[int, ...]:
        out: list[int] = []
        for p in (self.tasks_file, self.killed_file):
            try:
                st = os.stat(p)
                out += [st.st_mtime_ns, st.st_size, st.st_ino]
            except FileNotFoundError:
                out += [0, 0, 0]
        return tuple(out)

    def tasks(self) -> list[dict[str, Any]]:
        stamp = self._files_stamp()
        if stamp != self._stamp:
            self._tasks = self._load()
            self._stamp = stamp
        return self._tasks

    def _load(self) -> list[dict[str, Any]]:
        try:
            running = json.loads(self.tasks_file.read_text())
        except (FileNotFoundError, ValueError):
            running = []
        killed: list[dict[str, Any]] = []
        try:
            for line in self.killed_file.read_text().splitlines():
                if line.strip():
                    killed.append(json.loads(line))
        except (FileNotFoundError, ValueError):
            pass
        gone = {k["task_id"] for k in killed}
        out = [
            mesos_task(t, self.framework, STATES.get(t["status"], "TASK_RUNNING"))
            for t in running
            if t["task_id"] not in gone
        ]
        for k in killed:  # completed tasks: only the id is known to the kill record
            out.append(
                {
                    "id": k["task_id"],
                    "name": "",
                    "framework_id": self.framework,
                    "state": "TASK_KILLED",
                    "statuses": [{"state": "TASK_KILLED", "timestamp": 0.0}],
                }
            )
        return out


class MesosMaster:
    """One master. `leader` None: this one leads; else the URL of the one that does."""

    def __init__(self, source: TaskSource, leader: str | None = None) -> None:
        self.source = source
        self.leader = leader
        self.url = ""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/master/tasks", self.handle_tasks)
        app.router.add_get("/master/tasks.json", self.handle_tasks)
        app.router.add_get("/master/frameworks", self.handle_frameworks)
        app.router.add_get("/master/state", self.handle_state)
        app.router.add_get("/master/state.json", self.handle_state)
        app.router.add_get("/master/redirect", self.handle_redirect)
        app.router.add_get("/master/redirect/{rest:.*}", self.handle_redirect)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{bound[0]}:{bound[1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _leader_hostport(self) -> str:
        return (self.leader or self.url).split("://", 1)[1].rstrip("/")

    def _to_leader(self, request: web.Request) -> web.Response | None:
        if self.leader is None:
            return None
        location = f"//{self._leader_hostport()}{request.path_qs}"
        return web.Response(status=307, headers={"Location": location})

    async def handle_redirect(self, request: web.Request) -> web.Response:
        rest = request.match_info.get("rest", "")
        location = f"//{self._leader_hostport()}" + (f"/{rest}" if rest else "")
        return web.Response(status=307, headers={"Location": location})

    async def handle_tasks(self, request: web.Request) -> web.Response:
        moved = self._to_leader(request)
        if moved is not None:
            return moved
        q = request.query
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            offset = int(q.get("offset", 0))
        except ValueError:
            return web.Response(status=400, text="Failed to parse limit or offset")
        if limit < 0 or offset < 0:
            return web.Response(status=400, text="limit and offset must not be negative")
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            return web.Response(status=400, text=f"Unknown order '{order}'")
        framework = q.get("framework_id")
        tasks = self.source.tasks()
        if framework is not None and framework != self.source.framework:
            tasks = []
        if order == "desc":
            tasks = tasks[::-1]
        return web.json_response({"tasks": tasks[offset : offset + limit]})

    def _framework(self) -> dict[str, Any]:
        tasks = self.source.tasks()
        return {
            "id": self.source.framework,
            "name": "Aurora",
            "active": True,
            "connected": True,
            "role": "*",
            "user": "root",
            "tasks": [t for t in tasks if t["state"] != "TASK_KILLED"],
            "completed_tasks": [t for t in tasks if t["state"] == "TASK_KILLED"],
        }

    async def handle_frameworks(self, request: web.Request) -> web.Response:
        moved = self._to_leader(request)
        if moved is not None:
            return moved
        return web.json_response(
            {
                "frameworks": [self._framework()],
                "completed_frameworks": [],
                "unregistered_frameworks": [],
            }
        )

    async def handle_state(self, request: web.Request) -> web.Response:
        moved = self._to_leader(request)
        if moved is not None:
            return moved
        host, _, port = self._leader_hostport().rpartition(":")
        return web.json_response(
            {
                "version": MESOS_VERSION,
                "hostname": host,
                "pid": f"master@{host}:{port}",
                "leader": f"master@{host}:{port}",
                "leader_info": {"hostname": host, "ip": host, "port": int(port)},
                "frameworks": [self._framework()],
            }
        )


def source_for(sandbox_dir: str, cluster: str) -> TaskSource:
    from sandbox.backups import framework_id
    from sandbox.layout import SandboxInfo

    info = SandboxInfo(dir=sandbox_dir, cluster=cluster)
    return TaskSource(info.tasks_file, info.killed_file, framework_id(sandbox_dir, cluster))


def masters_file(sandbox_dir: str | Path) -> Path:
    """DIR/mesos/masters.json: {"leader": URL, "standby": URL} of the running masters."""
    return Path(sandbox_dir) / "mesos/masters.json"
