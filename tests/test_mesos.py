"""bot.mesos against the sandbox's Mesos master code (in-process, real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot.mesos import MesosUnavailable, running_tasks
from runbook.clusters import ClusterFileError, load_clusters
from sandbox.mesos_master import MesosMaster, TaskSource

FW = "0b5c8a2e-0000-4000-8000-000000000000-0000"


def _write(tmp_path: Path, n: int, killed: int = 0) -> TaskSource:
    tasks = [
        {
            "role": "www",
            "environment": "prod",
            "job": f"job{i % 7}",
            "instance": i,
            "status": "RUNNING" if i % 5 else "PENDING",
            "task_id": f"www-prod-job{i % 7}-{i}-x",
        }
        for i in range(n)
    ]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    (tmp_path / "killed.jsonl").write_text(
        "".join(json.dumps({"task_id": t["task_id"]}) + "\n" for t in tasks[:killed])
    )
    return TaskSource(tmp_path / "tasks.json", tmp_path / "killed.jsonl", FW)


async def test_pages_with_a_small_limit_and_leaves_out_killed_tasks(tmp_path: Path) -> None:
    master = MesosMaster(_write(tmp_path, 53, killed=4))
    url = await master.start()
    try:
        tasks = await running_tasks(url, FW, 5.0, page=10)
        assert len(tasks) == 49
        assert len({t.task_id for t in tasks}) == 49
        assert {t.state for t in tasks} == {"TASK_RUNNING", "TASK_STAGING"}
        assert tasks[0].job_key == "www/prod/job4" and tasks[0].task_id == "www-prod-job4-4-x"
        assert await running_tasks(url, "another-framework", 5.0, page=10) == []
    finally:
        await master.close()


async def test_a_non_leading_master_is_followed_to_the_leader(tmp_path: Path) -> None:
    source = _write(tmp_path, 25)
    leader = MesosMaster(source)
    lurl = await leader.start()
    standby = MesosMaster(source, leader=lurl)
    surl = await standby.start()
    try:
        tasks = await running_tasks(surl, FW, 5.0, page=7)
        assert len(tasks) == 25
        # The standby itself lists nothing: it redirects like Mesos.
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{surl}/master/tasks")
            assert r.status_code == 307 and r.headers["Location"].startswith("//127.0.0.1:")
            state = (await c.get(f"{surl}/master/state", follow_redirects=True)).json()
            assert state["leader"] == "master@" + lurl.removeprefix("http://")
    finally:
        await standby.close()
        await leader.close()


async def test_failures_are_one_reason(tmp_path: Path) -> None:
    master = MesosMaster(_write(tmp_path, 3))
    url = await master.start()
    await master.close()  # nothing listens there any more
    with pytest.raises(MesosUnavailable) as err:
        await running_tasks(url, FW, 2.0)
    assert err.value.reason.startswith(f"Mesos master {url}: ConnectError")
    assert "\n" not in err.value.reason

    async def broken(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>")

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"//{request.host}"})

    app = web.Application()
    app.router.add_get("/master/redirect", redirect)
    app.router.add_get("/master/tasks", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(MesosUnavailable, match="bad answer"):
            await running_tasks(f"http://127.0.0.1:{port}", FW, 2.0)
    finally:
        await runner.cleanup()


def test_cluster_mesos_master_must_be_an_http_url(tmp_path: Path) -> None:
    base = """[clusters.c]
aurora_name = "c"
mesos_master = {value}
[[clusters.c.schedulers]]
host = "s1"
"""
    f = tmp_path / "c.toml"
    f.write_text(base.format(value='"http://127.0.0.1:5050/"'))
    assert load_clusters(f)["c"].mesos_master == "http://127.0.0.1:5050"
    for bad in (
        '"zk://127.0.0.1:2181/mesos"',
        '"http://a b:5050"',
        '"http://h:5050/x;rm"',
        '"http://h:99999"',
    ):
        f.write_text(base.format(value=bad))
        with pytest.raises(ClusterFileError, match="mesos_master"):
            load_clusters(f)
