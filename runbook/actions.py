"""What each step does: its commands, its check, and what it learns.

An action gets a `StepContext` (the cluster, the facts learnt so far, and the ports to
the outside) and returns an `Outcome`. Facts go back through `ctx.learn()`, into Redis.
`check()` is read-only: it is also what the engine runs after a bot died mid-step, to
tell the team whether the interrupted command appears to have finished.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runbook import commands as cmd, envfile
from runbook.clusters import Cluster, Scheduler, parse_duration
from runbook.listing import ListingError, listing_ids, parse_listing, summarize
from runbook.ports import HostResult, LeaderDetector, OnResult, Remote, VarsProbe
from runbook.procedure import Step, Targets

BACKUP_PREFIX = "scheduler-backup-"
INACTIVE = {"inactive", "failed", "unknown"}


@dataclass
class Outcome:
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timing:
    """Bounded waits; tests and the sandbox shorten them."""

    leader_wait: float = 90.0
    failover_wait: float = 600.0  # capped by the cluster's failover_wait
    verify_wait: float = 150.0
    poll: float = 1.0
    vars_timeout: float = 3.0


@dataclass
class StepContext:
    cluster: Cluster
    step: Step
    facts: dict[str, Any]
    remote: Remote
    probe: VarsProbe
    learn: Callable[..., Awaitable[None]]
    on_result: OnResult | None = None
    timing: Timing = field(default_factory=Timing)
    # Leader detection from every configured source (bot.leader); /vars alone without it.
    detect: LeaderDetector | None = None
    # commands actually sent, for the card and the transcript
    sent: list[dict[str, str]] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return [s.host for s in self.cluster.schedulers]

    def sched(self, host: str) -> Scheduler:
        return self.cluster.scheduler(host)

    @property
    def leader(self) -> str:
        leader: str = self.facts["leader"]
        return leader

    def targets(self) -> list[str]:
        if self.step.targets is Targets.LEADER:
            return [self.leader]
        if self.step.targets is Targets.BOT:
            return []
        return self.hosts

    async def run(
        self,
        per_host: Mapping[str, str],
        stdin: Mapping[str, bytes] | None = None,
        record: bool = True,
    ) -> dict[str, HostResult]:
        if record:
            self.sent.append(dict(per_host))
        timeout = parse_duration(self.cluster.ssh.command_timeout).total_seconds()
        return await self.remote.run(
            per_host, timeout=timeout, stdin=stdin, on_result=self.on_result if record else None
        )

    async def vars(self) -> dict[str, dict[str, str] | str]:
        endpoints = {
            s.host: (s.connect_address, self.cluster.http_port_of(s))
            for s in self.cluster.schedulers
        }
        return await self.probe.vars(endpoints, self.timing.vars_timeout)


# ---------------------------------------------------------------- values for templates


def host_values(cluster: Cluster, s: Scheduler, facts: Mapping[str, Any]) -> dict[str, str]:
    """Every quoted value a template may use for one host, validated first."""
    paths = facts.get("paths", {}).get(s.host, {})
    log_dir = cluster.path(s, "native_log_file_path") or paths.get("log_dir")
    backup_dir = cluster.path(s, "backup_dir") or paths.get("backup_dir")
    values = {
        "env_file": cmd.path(cluster.path(s, "env_file") or ""),
        "admin_clusters_json": cmd.path(cluster.path(s, "admin_clusters_json") or ""),
        "scheduler_user": cmd.user(cluster.scheduler_user),
        "cluster": cmd.cluster_name(cluster.aurora_name),
        "address": s.connect_address,
        "http_port": cmd.port(cluster.http_port_of(s)),
    }
    if log_dir:
        values["log_dir"] = cmd.path(log_dir)
        parent = log_dir.rstrip("/").rsplit("/", 1)[0] or "/"
        values["log_parent"] = cmd.path(parent)
        stamp = facts.get("archive_stamp", "")
        values["archive"] = cmd.path(f"{log_dir.rstrip('/')}.aurora-restore-{stamp}.tar.gz")
    if backup_dir:
        values["backup_dir"] = cmd.path(backup_dir)
        if facts.get("backup"):
            backup = cmd.backup_id(facts["backup"])
            values["backup"] = backup
            values["backup_path"] = cmd.path(f"{backup_dir.rstrip('/')}/{backup}")
    return values


def verbatim(cluster: Cluster) -> dict[str, str]:
    return {
        "service_stop": cluster.service.stop,
        "service_start": cluster.service.start,
        "is_active": cluster.service.is_active,
        "aurora_admin": cluster.aurora_admin,
        "mesos_log": cluster.mesos_log,
    }


def render_for(ctx: StepContext, template: str, hosts: list[str] | None = None) -> dict[str, str]:
    out = {}
    for h in hosts if hosts is not None else ctx.targets():
        out[h] = cmd.render(
            template, host_values(ctx.cluster, ctx.sched(h), ctx.facts), verbatim(ctx.cluster)
        )
    return out


def planned_commands(
    cluster: Cluster, step: Step, facts: Mapping[str, Any]
) -> dict[str, list[str]]:
    """The exact commands a step will send, per host, for its card (best effort before facts)."""
    if step.targets is Targets.BOT:
        return {}
    hosts = (
        [facts["leader"]]
        if step.targets is Targets.LEADER and facts.get("leader")
        else [s.host for s in cluster.schedulers]
    )
    out: dict[str, list[str]] = {}
    for h in hosts:
        values = host_values(cluster, cluster.scheduler(h), facts)
        lines = []
        for t in step.commands:
            try:
                lines.append(cmd.render(t, values, verbatim(cluster)))
            except KeyError:
                lines.append(t)
        out[h] = lines
    return out


def _failures(results: Mapping[str, HostResult]) -> list[str]:
    return [
        f"{h}: {r.error or f'exit {r.exit_status}'}"
        + (
            f" ({(r.stderr or r.stdout).strip().splitlines()[-1]})"
            if (r.stderr or r.stdout).strip()
            else ""
        )
        for h, r in results.items()
        if not r.ok
    ]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(data: str) -> bytes:
    return base64.b64decode(data)


async def _read_all(ctx: StepContext, field_: str) -> dict[str, bytes | str]:
    async def one(h: str) -> bytes | str:
        path = host_values(ctx.cluster, ctx.sched(h), ctx.facts)[field_]
        try:
            return await ctx.remote.read_file(h, path)
        except Exception as exc:  # one clear line per host
            # bot.ssh.SshError already names host and path: keep only its reason.
            why = getattr(exc, "reason", None) or str(exc)
            return f"cannot read {path}: {why}"

    hosts = ctx.hosts
    return dict(zip(hosts, await asyncio.gather(*(one(h) for h in hosts)), strict=True))


def backup_age(name: str, now: datetime | None = None) -> float | None:
    try:
        taken = datetime.strptime(name[len(BACKUP_PREFIX) :], "%Y-%m-%d-%H-%M")
    except ValueError:
        return None
    return ((now or datetime.now()) - taken).total_seconds()


def lifecycle(v: dict[str, str] | str) -> str:
    if isinstance(v, str):
        return "DOWN"
    for k, val in v.items():
        if k.startswith("scheduler_lifecycle_") and val.strip() in ("1", "1.0"):
            return k.removeprefix("scheduler_lifecycle_")
    return "UNKNOWN"


# ---------------------------------------------------------------- the steps


async def preflight(ctx: StepContext) -> Outcome:
    envs = await _read_all(ctx, "env_file")
    jsons = await _read_all(ctx, "admin_clusters_json")
    problems = [f"{h}: {v}" for d in (envs, jsons) for h, v in d.items() if isinstance(v, str)]
    if problems:
        return Outcome(False, "not every host reached: " + "; ".join(problems))
    originals: dict[str, Any] = {}
    paths: dict[str, dict[str, str]] = {}
    auth = []
    for h in ctx.hosts:
        env, cj = envs[h], jsons[h]
        assert isinstance(env, bytes) and isinstance(cj, bytes)
        originals[h] = {
            "env_file": {"b64": _b64(env), "sha256": _sha(env)},
            "admin_clusters_json": {"b64": _b64(cj), "sha256": _sha(cj)},
        }
        try:
            values = envfile.parse(env.decode())
        except (UnicodeDecodeError, envfile.EnvFileError) as exc:
            return Outcome(False, f"{h}: cannot read the environment file: {exc}")
        paths[h] = {
            "log_dir": values.get("LOGDB_FILE_PATH", ""),
            "backup_dir": values.get("BACKUP_DIR", ""),
        }
        if envfile.has_auth_flag(env.decode()):
            auth.append(h)
    await ctx.learn(originals=originals, paths=paths, auth_hosts=auth)
    ctx.facts.update(paths=paths)
    listing = await ctx.run(render_for(ctx, "ls -1 {backup_dir}"))
    failures = _failures(listing)
    if failures:
        return Outcome(False, "cannot list the backups: " + "; ".join(failures))
    holders: dict[str, list[str]] = {}
    for h, r in listing.items():
        for name in r.stdout.split():
            if backup_age(name) is not None:
                holders.setdefault(name, []).append(h)
    states = {h: lifecycle(v) for h, v in (await ctx.vars()).items()}
    leaders = [h for h, s in states.items() if s in ("ACTIVE", "LEADER_AWAITING_REGISTRATION")]
    leader = leaders[0] if len(leaders) == 1 else None
    # Where a scheduler runs, it lists its own backup_dir too (aurora_admin asks the one
    # its clusters.json leads to: the leader).
    admin_note = ""
    asked = leader or next((h for h, s in states.items() if s != "DOWN"), None)
    if asked is not None:
        listed_by = await ctx.run(render_for(ctx, LIST_BACKUPS, [asked]))
        if listed_by[asked].ok:
            listed = parse_backup_list(listed_by[asked].stdout)
            for name in listed:
                if asked not in holders.setdefault(name, []):
                    holders[name].append(asked)
            admin_note = f"; aurora_admin on {asked} lists {len(listed)}"
        else:
            why = "; ".join(_failures(listed_by))
            admin_note = f"; aurora_admin on {asked} could not list them ({why})"
    wanted = ctx.facts.get("requested_backup")
    if wanted:
        if wanted not in holders:
            return Outcome(False, f"Backup {wanted} does not exist on any scheduler.")
        backup = wanted
    else:
        backup = max(holders) if holders else None
    table: dict[str, Any] = {}
    disagreements: list[str] = []
    if ctx.detect is not None:
        report = await ctx.detect(ctx.cluster, ctx.probe, ctx.remote, "ACTIVE")
        table, disagreements = dict(report.table), list(report.problems)
    await ctx.learn(
        backups={n: sorted(hs) for n, hs in sorted(holders.items(), reverse=True)},
        **backup_facts(backup, ctx.cluster),
        preflight_states=states,
        preflight_leader=leader,
        preflight_table=table,
        preflight_problems=disagreements,
        archive_stamp=time.strftime("%Y%m%d-%H%M%S"),
    )
    ctx.facts.update(backup=backup)
    age = ctx.facts.get("backup_age")
    age_text = f"{age / 3600:.1f}h old" if age is not None else "no backup found"
    return Outcome(
        True,
        f"{len(ctx.hosts)} hosts reached; {len(holders)} backups{admin_note}; "
        f"backup {backup or '-'} ({age_text}); "
        f"leader now: {leader or 'none or several'}"
        + ("\nbackups, newest first:\n" + backup_rows(holders) if holders else "")
        + ("\nthe leader, by source:\n" + table_rows(table) if table else "")
        + ("\n(for information: " + "; ".join(disagreements) + ")" if disagreements else ""),
    )


LIST_BACKUPS = "{!aurora_admin} scheduler_list_backups --bypass-leader-redirect {cluster}"


def parse_backup_list(stdout: str) -> list[str]:
    """`N available backups:` then one name a line, unordered, with temp_ and other files."""
    names = []
    for line in stdout.splitlines():
        word = line.strip()
        if word.startswith(BACKUP_PREFIX) and backup_age(word) is not None:
            names.append(word)
    return names


def backup_facts(backup: str | None, cluster: Cluster) -> dict[str, Any]:
    """What the plan needs to know of the chosen backup: its age, and whether too old."""
    age = backup_age(backup) if backup else None
    too_old = backup is None or (
        age is not None and age > cluster.max_backup_age_delta.total_seconds()
    )
    return {"backup": backup, "backup_age": age, "backup_too_old": too_old}


def backup_rows(holders: Mapping[str, list[str]], limit: int = 5) -> str:
    """The newest backups, one a line: name, age, the hosts holding it."""
    names = sorted(holders, reverse=True)
    rows = []
    for name in names[:limit]:
        age = backup_age(name)
        when = f"{age / 3600:.1f}h" if age is not None else "age ?"
        rows.append(f"  {name} · {when} · on {', '.join(sorted(holders[name]))}")
    if len(names) > limit:
        rows.append(f"  … and {len(names) - limit} older")
    return "\n".join(rows)


def table_rows(table: Mapping[str, Mapping[str, Any]]) -> str:
    """The leader table as text, one host a line: "  host: logs leader, vars ACTIVE…"."""
    return "\n".join(
        f"  {host}: " + ", ".join(f"{src} {cell}" for src, cell in sorted(row.items()))
        for host, row in table.items()
    )


async def _service_states(ctx: StepContext, hosts: list[str]) -> dict[str, str]:
    res = await ctx.run({h: ctx.cluster.service.is_active for h in hosts}, record=False)
    return {h: (r.stdout.strip() or r.error or f"exit {r.exit_status}") for h, r in res.items()}


async def check_stopped(ctx: StepContext) -> Outcome:
    states = await _service_states(ctx, ctx.hosts)
    bad = {h: s for h, s in states.items() if s not in INACTIVE}
    return Outcome(
        not bad, "inactive everywhere" if not bad else f"still running: {bad}", {"states": states}
    )


async def check_started(ctx: StepContext) -> Outcome:
    states = await _service_states(ctx, ctx.hosts)
    bad = {h: s for h, s in states.items() if s != "active"}
    return Outcome(
        not bad, "active everywhere" if not bad else f"not active: {bad}", {"states": states}
    )


async def _run_then(
    ctx: StepContext, template: str, check: Callable[[StepContext], Awaitable[Outcome]] | None
) -> Outcome:
    results = await ctx.run(render_for(ctx, template))
    failures = _failures(results)
    if failures:
        return Outcome(False, "; ".join(failures))
    if check is None:
        return Outcome(True, "exit 0 everywhere")
    return await check(ctx)


async def stop(ctx: StepContext) -> Outcome:
    return await _run_then(ctx, "{!service_stop}", check_stopped)


async def start(ctx: StepContext) -> Outcome:
    return await _run_then(ctx, "{!service_start}", check_started)


def _admin_entry(cluster: Cluster, s: Scheduler) -> dict[str, Any]:
    return {
        "name": cluster.aurora_name,
        "scheduler_uri": f"http://localhost:{cluster.http_port_of(s)}",
        "auth_mechanism": "UNAUTHENTICATED",
    }


def direct_clusters_json(original: bytes, cluster: Cluster, s: Scheduler) -> bytes:
    """The clusters.json with the cluster's entry pointing at the local scheduler, no zk."""
    try:
        doc = json.loads(original.decode() or "[]")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"clusters.json is not JSON: {exc}") from None
    entries = doc if isinstance(doc, list) else list(doc.values()) if isinstance(doc, dict) else []
    out = []
    replaced = False
    for e in entries:
        if isinstance(e, dict) and e.get("name") == cluster.aurora_name:
            e = {k: v for k, v in e.items() if k not in ("zk", "zk_port", "scheduler_zk_path")}
            e["scheduler_uri"] = _admin_entry(cluster, s)["scheduler_uri"]
            replaced = True
        out.append(e)
    if not replaced:
        out.append(_admin_entry(cluster, s))
    return (json.dumps(out, indent=2) + "\n").encode()


WRITE = "sudo tee {target} > /dev/null"


async def _write_files(ctx: StepContext, field_: str, contents: Mapping[str, bytes]) -> Outcome:
    commands = {}
    for h in contents:
        target = host_values(ctx.cluster, ctx.sched(h), ctx.facts)[field_]
        commands[h] = cmd.render(WRITE, {"target": target})
    results = await ctx.run(commands, stdin=contents)
    failures = _failures(results)
    if failures:
        return Outcome(False, "; ".join(failures))
    reread = await _read_all(ctx, field_)
    bad = [h for h, data in contents.items() if reread[h] != data]
    if bad:
        return Outcome(False, f"file re-read differs on {', '.join(bad)}")
    return Outcome(True, "file re-read matches")


async def admin_access(ctx: StepContext) -> Outcome:
    contents = {}
    for h in ctx.hosts:
        original = unb64(ctx.facts["originals"][h]["admin_clusters_json"]["b64"])
        try:
            contents[h] = direct_clusters_json(original, ctx.cluster, ctx.sched(h))
        except ValueError as exc:
            return Outcome(False, f"{h}: {exc}")
    return await _write_files(ctx, "admin_clusters_json", contents)


async def _edit_env(
    ctx: StepContext, hosts: list[str], edit: Callable[[str], str]
) -> Outcome | dict[str, bytes]:
    current = await _read_all(ctx, "env_file")
    out = {}
    for h in hosts:
        data = current[h]
        if isinstance(data, str):
            return Outcome(False, f"{h}: {data}")
        try:
            out[h] = edit(data.decode()).encode()
        except (UnicodeDecodeError, envfile.EnvFileError) as exc:
            return Outcome(False, f"{h}: {exc}")
    return out


async def drop_auth(ctx: StepContext) -> Outcome:
    hosts = ctx.facts.get("auth_hosts") or []
    edited = await _edit_env(ctx, hosts, envfile.drop_auth)
    if isinstance(edited, Outcome):
        return edited
    done = await _write_files(ctx, "env_file", edited)
    if not done.ok:
        return done
    reread = await _read_all(ctx, "env_file")
    left = []
    for h in hosts:
        data = reread[h]
        if not isinstance(data, bytes) or envfile.has_auth_flag(data.decode()):
            left.append(h)
    return Outcome(not left, "flag absent" if not left else f"flag still on {left}")


async def disable(ctx: StepContext) -> Outcome:
    edited = await _edit_env(ctx, ctx.hosts, envfile.disable)
    if isinstance(edited, Outcome):
        return edited
    done = await _write_files(ctx, "env_file", edited)
    if not done.ok:
        return done
    return await check_disabled(ctx)


async def check_disabled(ctx: StepContext) -> Outcome:
    reread = await _read_all(ctx, "env_file")
    problems = []
    for h, data in reread.items():
        if isinstance(data, str):
            problems.append(f"{h}: {data}")
        else:
            problems += [f"{h}: {p}" for p in envfile.check_disabled(data.decode())]
    return Outcome(
        not problems,
        "the three values, each once, on every host" if not problems else "; ".join(problems),
    )


async def archive(ctx: StepContext) -> Outcome:
    return await _run_then(ctx, ctx.step.commands[0], check_archived)


async def _on_every_host(ctx: StepContext, template: str, ok: str, bad: str) -> Outcome:
    """A read-only check: `template` exits 0 on every target."""
    res = await ctx.run(render_for(ctx, template), record=False)
    failing = [h for h, r in res.items() if not r.ok]
    return Outcome(not failing, ok if not failing else f"{bad} on {', '.join(failing)}")


async def check_archived(ctx: StepContext) -> Outcome:
    return await _on_every_host(ctx, "test -s {archive}", "tarball exists, size > 0", "no tarball")


async def wipe_preview(ctx: StepContext) -> dict[str, Any]:
    res = await ctx.run(
        render_for(
            ctx,
            "echo $(sudo find {log_dir} -mindepth 1 -type f | wc -l) $(sudo du -sb {log_dir} | cut -f1)",
        ),
        record=False,
    )
    out = {}
    for h, r in res.items():
        parts = r.stdout.split()
        out[h] = (
            {"files": int(parts[0]), "bytes": int(parts[1])}
            if r.ok and len(parts) == 2
            else {"error": r.error or r.stderr.strip()}
        )
    return out


async def wipe(ctx: StepContext) -> Outcome:
    return await _run_then(ctx, ctx.step.commands[0], check_wiped)


async def check_wiped(ctx: StepContext) -> Outcome:
    return await _on_every_host(
        ctx, 'test -z "$(sudo ls -A {log_dir})"', "directory empty everywhere", "not empty"
    )


async def init_log(ctx: StepContext) -> Outcome:
    return await _run_then(ctx, ctx.step.commands[0], None)


async def _wait_for_leader(
    ctx: StepContext, state: str, wait: float, exclude: str | None = None
) -> tuple[str | None, dict[str, str]]:
    deadline = time.monotonic() + wait
    while True:
        table = {h: lifecycle(v) for h, v in (await ctx.vars()).items()}
        leaders = [h for h, s in table.items() if s == state]
        if len(leaders) == 1 and leaders[0] != exclude:
            return leaders[0], table
        if time.monotonic() >= deadline:
            return None, table
        await asyncio.sleep(ctx.timing.poll)


async def _detect(
    ctx: StepContext, state: str, wait: float
) -> tuple[str | None, dict[str, Any], list[str]]:
    """Poll every source until they agree on one leader, or the wait is over."""
    deadline = time.monotonic() + wait
    while True:
        if ctx.detect is not None:
            report = await ctx.detect(ctx.cluster, ctx.probe, ctx.remote, state)
            leader, table, problems = report.leader, report.table, list(report.problems)
            if leader is not None and problems:
                leader = None
        else:
            leader, states = await _wait_for_leader(ctx, state, 0)
            table = {h: {"vars": s} for h, s in states.items()}
            problems = [] if leader else [f"not exactly one scheduler in {state}"]
        if leader is not None or time.monotonic() >= deadline:
            return leader, table, problems
        await asyncio.sleep(ctx.timing.poll)


async def find_leader(ctx: StepContext) -> Outcome:
    leader, table, problems = await _detect(
        ctx, "LEADER_AWAITING_REGISTRATION", ctx.timing.leader_wait
    )
    await ctx.learn(leader_table=table, leader_problems=problems)
    rows = table_rows(table)
    if leader is None:
        return Outcome(
            False, "no agreed leader: " + "; ".join(problems) + "\n" + rows, {"table": table}
        )
    await ctx.learn(leader=leader)
    sources = sorted({src for row in table.values() for src in row})
    return Outcome(
        True, f"leader: {leader} (agreed by {', '.join(sources)})\n{rows}", {"table": table}
    )


async def place(ctx: StepContext) -> Outcome:
    backup = ctx.facts.get("backup")
    if not backup:
        return Outcome(False, "no backup chosen")
    leader = ctx.leader
    holders = [h for h in ctx.facts.get("backups", {}).get(backup, []) if h != leader]
    path = host_values(ctx.cluster, ctx.sched(leader), ctx.facts)["backup_path"]
    has = await ctx.run({leader: cmd.render("test -f {p}", {"p": path})}, record=False)
    if has[leader].ok:
        source_sum = None
        if holders:
            src = holders[0]
            src_path = host_values(ctx.cluster, ctx.sched(src), ctx.facts)["backup_path"]
            r = await ctx.run({src: cmd.render("sha256sum {p}", {"p": src_path})}, record=False)
            source_sum = r[src].stdout.split()[0] if r[src].ok else None
    else:
        if not holders:
            return Outcome(False, f"no scheduler holds {backup}")
        src = holders[0]
        src_path = host_values(ctx.cluster, ctx.sched(src), ctx.facts)["backup_path"]
        data = await ctx.remote.read_file(src, src_path)
        source_sum = _sha(data)
        r = await ctx.run({leader: cmd.render(WRITE, {"target": path})}, stdin={leader: data})
        if not r[leader].ok:
            return Outcome(False, "; ".join(_failures(r)))
    r = await ctx.run({leader: cmd.render("sha256sum {p} && stat -c %s {p}", {"p": path})})
    if not r[leader].ok:
        return Outcome(False, "; ".join(_failures(r)))
    leader_sum = r[leader].stdout.split()[0]
    if source_sum is not None and leader_sum != source_sum:
        return Outcome(False, f"sha256 differs: leader {leader_sum}, source {source_sum}")
    await ctx.learn(backup_sha256=leader_sum)
    return Outcome(True, f"{backup} on {leader}, sha256 {leader_sum[:12]}…")


async def stage(ctx: StepContext) -> Outcome:
    r = await ctx.run(render_for(ctx, ctx.step.commands[0]))
    if not r[ctx.leader].ok:
        return Outcome(False, "; ".join(_failures(r)))
    await ctx.learn(staged_on=ctx.leader)
    return Outcome(True, f"staged on {ctx.leader}")


async def print_listing(
    ctx: StepContext, record: bool = True
) -> tuple[HostResult, list[Any] | None, str]:
    template = [t for t in ctx.step.commands if "print_recovery" in t] or [
        "{!aurora_admin} scheduler_print_recovery_tasks --bypass-leader-redirect {cluster}"
    ]
    r = await ctx.run(render_for(ctx, template[0], [ctx.leader]), record=record)
    res = r[ctx.leader]
    if not res.ok:
        return res, None, "; ".join(_failures(r))
    try:
        return res, parse_listing(res.stderr + "\n" + res.stdout), ""
    except ListingError as exc:
        return res, None, str(exc)


async def review_preview(ctx: StepContext) -> dict[str, Any]:
    _res, tasks, error = await print_listing(ctx)
    if tasks is None:
        return {"error": error}
    summary = summarize(tasks)
    listing = "\n".join(f"{t.role}\t{t.job}\t{t.shard}\t{t.status}\t{t.task_id}" for t in tasks)
    return {"count": len(tasks), "summary": summary, "listing": listing}


DELETE_TASKS = (
    "{!aurora_admin} scheduler_delete_recovery_tasks --bypass-leader-redirect {cluster} {task_ids}"
)


async def delete_tasks(ctx: StepContext, ids: list[str]) -> Outcome:
    """Delete staged tasks on the leader, then print the listing again and say what changed."""
    # The ids were checked against this listing (listing.check_task_ids) by the caller.
    before = ctx.facts.get("review") or {}
    known = set(listing_ids(before.get("listing", "")))
    # Until the listing is printed again, the one kept is out of date: a retry after the
    # bot died here prints it afresh rather than trusting it.
    await ctx.learn(review=None)
    values = {
        **host_values(ctx.cluster, ctx.sched(ctx.leader), ctx.facts),
        "task_ids": ",".join(ids),
    }
    r = await ctx.run({ctx.leader: cmd.render(DELETE_TASKS, values, verbatim(ctx.cluster))})
    failures = _failures(r)
    after = await review_preview(ctx)
    if "error" in after:
        # Nothing to show as the listing: approving prints it again (see review()).
        why = f"printing the listing again after the delete failed: {after['error']}"
        await ctx.learn(review={"error": why})
        sent = "delete failed: " + "; ".join(failures) if failures else "delete sent"
        return Outcome(False, f"{sent}; {why}", {"ids": ids, "before": len(known)})
    after_ids = set(listing_ids(after.get("listing", "")))
    removed = sorted(known - after_ids)
    change: dict[str, Any] = {
        "ids": ids,
        "before": len(known),
        "after": len(after_ids),
        "removed": removed,
        "still_there": sorted(set(ids) & after_ids),
        "appeared": sorted(after_ids - known),
        "ok": not failures,
    }
    after["deletions"] = [*before.get("deletions", []), change]
    await ctx.learn(review=after)
    if failures:
        return Outcome(False, "delete failed: " + "; ".join(failures), change)
    text = f"{len(removed)} of {len(ids)} tasks deleted; the listing now has {len(after_ids)}"
    if change["still_there"]:
        text += f"; still listed: {', '.join(change['still_there'][:5])}"
    if change["appeared"]:
        text += f"; {len(change['appeared'])} tasks appeared that were not there before"
    return Outcome(not change["still_there"], text, change)


async def review(ctx: StepContext) -> Outcome:
    preview = ctx.facts.get("review")
    if not preview or "error" in preview:
        # Nobody has seen a listing to approve: print it now, for the card, and let the
        # team look before approving again (Retry).
        preview = await review_preview(ctx)
        await ctx.learn(review=preview)
        if "error" in preview:
            return Outcome(False, preview["error"])
        return Outcome(
            False,
            f"the listing ({preview['count']} tasks) was printed again: review it, then Retry",
        )
    await ctx.learn(reviewed_count=preview["count"])
    return Outcome(True, f"listing of {preview['count']} tasks reviewed")


async def staged_on_same_leader(ctx: StepContext) -> str | None:
    """None when the staged backup is still loaded on the same leader, else why not."""
    staged_on = ctx.facts.get("staged_on")
    if not staged_on:
        return "nothing was staged (run restore.stage)"
    table = {h: lifecycle(v) for h, v in (await ctx.vars()).items()}
    leaders = [h for h, s in table.items() if s == "LEADER_AWAITING_REGISTRATION"]
    if leaders != [staged_on]:
        return f"the leader changed since the backup was staged on {staged_on} (now: {leaders or 'none'}); stage again"
    _res, tasks, error = await print_listing(ctx, record=False)
    if tasks is None:
        return f"the staged recovery is gone from {staged_on} ({error}); stage again"
    return None


async def commit(ctx: StepContext) -> Outcome:
    old = ctx.leader
    r = await ctx.run(render_for(ctx, ctx.step.commands[0]))
    res = r[old]
    # The commit shuts the scheduler down: a transport error is expected. Judge by what follows.
    wait = min(ctx.timing.failover_wait, parse_duration(ctx.cluster.failover_wait).total_seconds())
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        state = lifecycle((await ctx.vars())[old])
        if state != "LEADER_AWAITING_REGISTRATION":
            await ctx.learn(committed=True, staged_on=None)
            return Outcome(
                True, f"committed; {old} shut down to fail over (client exit {res.exit_status})"
            )
        await asyncio.sleep(ctx.timing.poll)
    return Outcome(
        False,
        f"{old} is still leading after the commit (client exit {res.exit_status}: {(res.stderr or res.stdout).strip()[-300:]})",
    )


async def failover(ctx: StepContext) -> Outcome:
    wait = min(ctx.timing.failover_wait, parse_duration(ctx.cluster.failover_wait).total_seconds())
    leader, table, problems = await _detect(ctx, "LEADER_AWAITING_REGISTRATION", wait)
    await ctx.learn(failover_table=table)
    rows = table_rows(table)
    if leader is None:
        return Outcome(
            False, f"no agreed leader within {wait:g}s: " + "; ".join(problems) + "\n" + rows
        )
    await ctx.learn(leader=leader)
    return Outcome(True, f"leader again: {leader}\n{rows}")


async def revert(ctx: StepContext) -> Outcome:
    originals = ctx.facts.get("originals") or {}
    if not originals:
        return Outcome(True, "nothing to revert")
    for field_ in ("env_file", "admin_clusters_json"):
        contents = {h: unb64(o[field_]["b64"]) for h, o in originals.items()}
        done = await _write_files(ctx, field_, contents)
        if not done.ok:
            return done
    return await check_reverted(ctx)


async def check_reverted(ctx: StepContext) -> Outcome:
    originals = ctx.facts.get("originals") or {}
    bad = []
    for field_ in ("env_file", "admin_clusters_json"):
        reread = await _read_all(ctx, field_)
        for h, o in originals.items():
            data = reread.get(h)
            if not isinstance(data, bytes) or _sha(data) != o[field_]["sha256"]:
                bad.append(f"{h}:{field_}")
    return Outcome(
        not bad, "sha256 equals the original on every host" if not bad else f"differs: {bad}"
    )


async def restart(ctx: StepContext) -> Outcome:
    leader = ctx.facts.get("leader")
    order = [h for h in ctx.hosts if h != leader] + ([leader] if leader in ctx.hosts else [])
    for h in order:
        r = await ctx.run(render_for(ctx, ctx.step.commands[0], [h]))
        if not r[h].ok:
            return Outcome(False, "; ".join(_failures(r)))
    return await check_started(ctx)


async def verify(ctx: StepContext) -> Outcome:
    leader, table = await _wait_for_leader(ctx, "ACTIVE", ctx.timing.verify_wait)
    if leader is None:
        return Outcome(False, f"no ACTIVE leader within {ctx.timing.verify_wait:g}s: {table}")
    v = (await ctx.vars())[leader]
    expected = ctx.facts.get("reviewed_count")
    active = None
    if isinstance(v, dict):
        counts = [
            int(float(val))
            for k, val in v.items()
            if k.startswith("task_store_") and k.removeprefix("task_store_").isupper()
        ]
        active = sum(counts) if counts else None
    await ctx.learn(verified_leader=leader, active_tasks=active)
    if expected is not None and active is not None and active != expected:
        return Outcome(
            False,
            f"{leader} is ACTIVE with {active} active tasks, the reviewed listing had {expected}",
        )
    return Outcome(
        True,
        f"{leader} is ACTIVE"
        + (f" with {active} active tasks, as reviewed" if active is not None else ""),
    )


async def nothing(ctx: StepContext) -> Outcome:
    return Outcome(True, ctx.step.check)


async def block_traffic(ctx: StepContext) -> Outcome:
    # Unreachable while block_configured refuses every approval.
    return Outcome(False, "no block_traffic command is configured for this cluster: skip this step")


RUN: dict[str, Callable[[StepContext], Awaitable[Outcome]]] = {
    "prep.preflight": preflight,
    "prep.ack_backup": nothing,
    "prep.stop": stop,
    "prep.block_traffic": block_traffic,
    "prep.admin_access": admin_access,
    "prep.auth": drop_auth,
    "prep.disable": disable,
    "prep.start": start,
    "log.stop": stop,
    "log.archive": archive,
    "log.wipe": wipe,
    "log.init": init_log,
    "log.start": start,
    "restore.leader": find_leader,
    "restore.place": place,
    "restore.stage": stage,
    "restore.review": review,
    "restore.commit": commit,
    "restore.failover": failover,
    "cleanup.revert": revert,
    "cleanup.restart": restart,
    "cleanup.verify": verify,
    "cleanup.transcript": nothing,
}

# Read-only checks, run after a bot died mid-step: did the command appear to finish?
CHECK: dict[str, Callable[[StepContext], Awaitable[Outcome]]] = {
    "prep.stop": check_stopped,
    "log.stop": check_stopped,
    "prep.start": check_started,
    "log.start": check_started,
    "cleanup.restart": check_started,
    "prep.disable": check_disabled,
    "log.archive": check_archived,
    "log.wipe": check_wiped,
    "cleanup.revert": check_reverted,
}

# Gathered when a step starts waiting for approval, for its card.
PREVIEW: dict[str, Callable[[StepContext], Awaitable[dict[str, Any]]]] = {
    "log.wipe": wipe_preview,
    "restore.review": review_preview,
}


async def all_stopped(ctx: StepContext) -> str | None:
    out = await check_stopped(ctx)
    return None if out.ok else f"every scheduler must be stopped first: {out.summary}"


async def block_configured(ctx: StepContext) -> str | None:
    # The cluster file has no traffic-block command yet: the step can only be skipped.
    return "no block_traffic command is configured for this cluster: skip this step"


PRECONDITION: dict[str, Callable[[StepContext], Awaitable[str | None]]] = {
    "all_stopped": all_stopped,
    "staged_on_same_leader": staged_on_same_leader,
    "block_configured": block_configured,
}


def condition_holds(name: str, facts: Mapping[str, Any]) -> bool:
    if name == "backup_too_old":
        return bool(facts.get("backup_too_old"))
    if name == "auth_flag_present":
        return bool(facts.get("auth_hosts"))
    raise KeyError(name)
