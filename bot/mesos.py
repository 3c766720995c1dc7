"""What Mesos runs for the cluster's framework: the tasks a restore could kill.

Reads the Mesos master's HTTP endpoints (mesos.apache.org/documentation/latest/endpoints/
master/tasks/, /redirect/): any master of the cluster is asked; `/master/redirect`
names the leading one (307 to `//host:port`), whose `/master/tasks?framework_id=...`
is read page by page (`limit`, `offset`, `order=asc`) until a short page. A leader that
changes between pages answers 307 again, which is followed. Every failure (connection,
timeout, HTTP status, bad JSON) becomes one MesosUnavailable with a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from runbook.errors import MesosUnavailable

PAGE = 5000  # tasks a page: ~2.5 MB of JSON; 20 requests for 100,000 tasks
MAX_PAGES = 10_000  # 10 million tasks: a master that never ends its listing is broken
# A task Mesos still runs (or may still run): what reconciliation can kill.
TERMINAL = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)


@dataclass(frozen=True)
class MesosTask:
    task_id: str
    state: str
    role: str
    environment: str
    job: str
    agent: str = ""

    @property
    def job_key(self) -> str:
        return f"{self.role}/{self.environment}/{self.job}"


def _task(raw: Any) -> MesosTask:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise ValueError(f"a task without an id: {str(raw)[:80]!r}")
    # Aurora names a TaskInfo after its job key, role/env/name (MesosTaskFactory.java).
    parts = str(raw.get("name") or "").split("/")
    role, env, job = parts if len(parts) == 3 else ("", "", "")
    return MesosTask(
        task_id=raw["id"],
        state=str(raw.get("state", "")),
        role=role,
        environment=env,
        job=job,
        agent=str(raw.get("slave_id", "")),
    )


async def _leader(client: httpx.AsyncClient, master_url: str) -> str:
    """The leading master's base URL, from `/master/redirect` of any master."""
    response = await client.get(f"{master_url}/master/redirect", follow_redirects=False)
    location = response.headers.get("Location")
    if response.status_code not in (301, 302, 303, 307, 308) or not location:
        raise MesosUnavailable(
            f"Mesos master {master_url}: /master/redirect answered HTTP "
            f"{response.status_code}, not the leader's address"
        )
    parts = urlsplit(urljoin(master_url + "/", location))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MesosUnavailable(f"Mesos master {master_url}: bad leader address {location!r}")
    return f"{parts.scheme}://{parts.netloc}"


async def _page(
    client: httpx.AsyncClient, leader: str, framework_id: str, offset: int, limit: int
) -> list[Any]:
    response = await client.get(
        f"{leader}/master/tasks",
        params={
            "framework_id": framework_id,
            "limit": limit,
            "offset": offset,
            "order": "asc",
        },
    )
    if response.status_code != 200:
        raise MesosUnavailable(
            f"Mesos master {leader}: /master/tasks answered HTTP {response.status_code}"
        )
    body = response.json()
    tasks = body.get("tasks") if isinstance(body, dict) else None
    if not isinstance(tasks, list):
        raise MesosUnavailable(f"Mesos master {leader}: /master/tasks holds no task list")
    return tasks


async def running_tasks(
    master_url: str, framework_id: str, timeout: float = 10.0, page: int = PAGE
) -> list[MesosTask]:
    """The framework's tasks Mesos has not seen end, from the leading master."""
    base = master_url.rstrip("/")
    try:
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=True, max_redirects=3
        ) as client:
            leader = await _leader(client, base)
            seen: dict[str, MesosTask] = {}
            offset = 0
            for _ in range(MAX_PAGES):
                raw = await _page(client, leader, framework_id, offset, page)
                for item in raw:
                    task = _task(item)
                    seen.setdefault(task.task_id, task)
                offset += len(raw)
                if len(raw) < page:
                    return [t for t in seen.values() if t.state not in TERMINAL]
            raise MesosUnavailable(f"Mesos master {leader}: more than {MAX_PAGES} pages of tasks")
    except MesosUnavailable:
        raise
    except httpx.TimeoutException:
        raise MesosUnavailable(f"Mesos master {base}: no answer within {timeout:g}s") from None
    except httpx.TooManyRedirects:
        raise MesosUnavailable(f"Mesos master {base}: too many redirects") from None
    except httpx.HTTPError as exc:
        raise MesosUnavailable(
            f"Mesos master {base}: {type(exc).__name__}: {str(exc)[:120]}"
        ) from None
    except ValueError as exc:
        raise MesosUnavailable(f"Mesos master {base}: bad answer: {str(exc)[:120]}") from None
