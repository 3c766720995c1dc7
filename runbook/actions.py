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
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import Any

from runbook import commands as cmd, envfile, snapshot
from runbook.backups import backup_time, is_backup
from runbook.clusters import Cluster, Scheduler, parse_duration
from runbook.errors import reason_of
from runbook.hostlog import log_read_command
from runbook.listing import ListingError, listing_ids, parse_listing, summarize
from runbook.plan import Plan, PlannedRemote, read_command
from runbook.ports import (
    HostResult,
    LeaderDetector,
    MesosTasks,
    OnResult,
    Remote,
    SourcesCheck,
    VarsProbe,
)
from runbook.redact import redact
from runbook.step import Step, Targets

INACTIVE = {"inactive", "failed", "unknown"}

# Read-only command templates the functions below send; the steps that send them list
# them in their `reads` (runbook.procedure), so that they are part of the plan approved.
IS_ACTIVE = "{!is_active}"
LOG_TAIL = "{!log_tail}"
ARCHIVE_MATCHES = (
    'listed=$(sudo -n tar -tzf {archive} | grep -v "/$" | sort) && '
    "present=$(sudo -n find {log_dir} -mindepth 1 -type f -printf './%P\\n' | sort) && "
    '[ -n "$listed" ] && [ "$listed" = "$present" ]'
)
ARCHIVE_SUM = "sudo -n sha256sum {archive}"
# Packs the log into a dated tarball next to it, after checking there is room (both
# procedures' archive step).
ARCHIVE = (
    "need=$(sudo -n du -sk {log_dir} | cut -f1); "
    "free=$(df -Pk {log_parent} | awk 'NR==2 {print $4}'); "
    'if [ "$free" -le "$need" ]; then echo "not enough room next to the log: the archive needs about ${need}K, ${free}K are free" >&2; exit 1; fi; '
    "sudo -n tar -czf {archive} -C {log_dir} . "
    '|| { sudo -n rm -f {archive}; echo "archiving failed: the partial archive was removed" >&2; exit 1; }; '
    "sudo -n sha256sum {archive}"
)
# The scheduler's argv, as the packaged startup script computes it from the env file.
ARGV_NOW = "bash -c {!argv_script} _ {env_file}"
WIPED = 'test -z "$(sudo -n ls -A {log_dir})"'
WIPE_PREVIEW = "echo $(sudo -n find {log_dir} -mindepth 1 -type f | wc -l) $(sudo -n du -sb {log_dir} | cut -f1)"
PRINT_RECOVERY = "{!aurora_admin} scheduler_print_recovery_tasks --bypass-leader-redirect {cluster}"


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
    start_wait: float = 180.0  # capped by the cluster's start_wait
    poll: float = 1.0
    vars_timeout: float = 3.0


class Recorder:
    """A `Remote` that notes every command it sends (a file read is `cat -- PATH`)."""

    def __init__(self, inner: Remote, sent: list[dict[str, str]]) -> None:
        self.inner = inner
        self.sent = sent

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        self.sent.append(dict(commands))
        return await self.inner.run(commands, timeout=timeout, stdin=stdin, on_result=on_result)

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        self.sent.append({host: read_command(path)})
        return await self.inner.read_file(host, path, timeout)

    async def close(self) -> None:
        await self.inner.close()


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
    # Whether each leader source can be read at all (bot.leader.check_sources), for preflight.
    sources: SourcesCheck | None = None
    # The Mesos master's running tasks (bot.mesos), for the kill forecast.
    mesos: MesosTasks | None = None
    # The commands the step ran (each with a host result), and those it only read with
    # (checks, previews, file reads, leader detection): both shown on its card.
    sent: list[dict[str, str]] = field(default_factory=list)
    reads: list[dict[str, str]] = field(default_factory=list)
    # The approved plan of a step that changes something (runbook.plan), when it runs.
    plan: Plan | None = None

    def __post_init__(self) -> None:
        # Every command goes through the recorder (leader detection's too), so a card
        # shows all a step sent; a planned step's remote sends nothing outside its plan.
        self._planned = (
            PlannedRemote(self.remote, self.plan) if self.plan is not None else self.remote
        )
        self.remote = Recorder(self._planned, self.reads)

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
        return target_hosts(self.cluster, self.step.targets, self.facts)

    async def run(
        self,
        per_host: Mapping[str, str],
        stdin: Mapping[str, bytes] | None = None,
        record: bool = True,
    ) -> dict[str, HostResult]:
        timeout = parse_duration(self.cluster.ssh.command_timeout).total_seconds()
        if not record:  # a read: noted as one by the recorder
            return await self.remote.run(per_host, timeout=timeout, stdin=stdin)
        self.sent.append(dict(per_host))
        return await self._planned.run(
            per_host, timeout=timeout, stdin=stdin, on_result=self.on_result
        )

    async def vars(self) -> dict[str, dict[str, str] | str]:
        endpoints = {
            s.host: (s.connect_address, self.cluster.http_port_of(s))
            for s in self.cluster.schedulers
        }
        return await self.probe.vars(endpoints, self.timing.vars_timeout)


def target_hosts(cluster: Cluster, targets: Targets, facts: Mapping[str, Any]) -> list[str]:
    """The hosts a step's `targets` name, in the cluster file's order (the leader's: the
    one learnt, none before)."""
    if targets is Targets.BOT:
        return []
    if targets is Targets.LEADER:
        return [facts["leader"]] if facts.get("leader") else []
    if targets is Targets.ALL:
        return [s.host for s in cluster.schedulers]
    from runbook import offline  # the offline procedure's targets

    return offline.target_hosts(cluster, targets, facts)


# ---------------------------------------------------------------- values for templates


def host_paths(facts: Mapping[str, Any], host: str) -> dict[str, str]:
    """What preflight learnt of one host's files: env_file, flavour, log_dir, backup_dir."""
    paths: dict[str, str] = facts.get("paths", {}).get(host, {})
    return paths


def host_values(cluster: Cluster, s: Scheduler, facts: Mapping[str, Any]) -> dict[str, str]:
    """Every quoted value a template may use for one host, validated first."""
    paths = host_paths(facts, s.host)
    log_dir = cluster.path(s, "native_log_file_path") or paths.get("log_dir")
    backup_dir = cluster.path(s, "backup_dir") or paths.get("backup_dir")
    env_file = cluster.path(s, "env_file") or paths.get("env_file")
    values = {
        "admin_clusters_json": cmd.path(cluster.path(s, "admin_clusters_json") or ""),
        "scheduler_user": cmd.user(cluster.scheduler_user),
        "cluster": cmd.cluster_name(cluster.aurora_name),
        "address": s.connect_address,
        "http_port": cmd.port(cluster.http_port_of(s)),
    }
    if env_file:
        values["env_file"] = cmd.path(env_file)
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
    from runbook import offline  # recovery-tool's values, once its preflight learnt them

    values.update(offline.tool_values(cluster, s, facts))
    return values


def aurora_client(cluster: Cluster, facts: Mapping[str, Any], host: str | None) -> str:
    """The aurora client on a host: the configured one, else what preflight found there."""
    if cluster.aurora_admin:
        return cluster.aurora_admin
    found: str | None = facts.get("clients", {}).get(host) if host else None
    return found or "aurora_admin"


def verbatim(
    cluster: Cluster, facts: Mapping[str, Any] | None = None, host: str | None = None
) -> dict[str, str]:
    flavour = host_paths(facts or {}, host).get("flavour") if host else None
    return {
        "service_stop": cluster.service.stop,
        "service_start": cluster.service.start,
        "is_active": cluster.service.is_active,
        "aurora_admin": aurora_client(cluster, facts or {}, host),
        "mesos_log": cluster.mesos_log,
        "log_tail": log_read_command(cluster, cluster.scheduler(host), LOG_TAIL_LINES)
        if host
        else "",
        "argv_script": shlex.quote(envfile.argv_script("rpm" if flavour == "rpm" else "debian"))
        if flavour
        else "",
    }


def render_for(ctx: StepContext, template: str, hosts: list[str] | None = None) -> dict[str, str]:
    out = {}
    for h in hosts if hosts is not None else ctx.targets():
        out[h] = cmd.render(
            template,
            host_values(ctx.cluster, ctx.sched(h), ctx.facts),
            verbatim(ctx.cluster, ctx.facts, h),
        )
    return out


def planned_commands(
    cluster: Cluster, step: Step, facts: Mapping[str, Any]
) -> dict[str, list[str]]:
    """The exact commands a step will send, per host, for its card: its stored plan
    (runbook.plan) once it has one, else its templates rendered as far as the facts
    allow; with secrets masked (a cluster-file template may hold one)."""
    stored = facts.get(f"plan:{step.id}")
    if isinstance(stored, Mapping) and "commands" in stored:
        return {h: [redact(c) for c in cs] for h, cs in stored["commands"].items()}
    if step.targets is Targets.BOT:
        return {}
    hosts = (
        target_hosts(cluster, step.targets, facts)
        if step.targets is not Targets.LEADER or facts.get("leader")
        else [s.host for s in cluster.schedulers]
    )
    out: dict[str, list[str]] = {}
    for h in hosts:
        values = host_values(cluster, cluster.scheduler(h), facts)
        lines = []
        for t in step.commands:
            try:
                lines.append(redact(cmd.render(t, values, verbatim(cluster, facts, h))))
            except KeyError:
                lines.append(redact(t))
        out[h] = lines
    return out


def _render_each(ctx: StepContext, templates: tuple[str, ...], host: str) -> list[str]:
    values = host_values(ctx.cluster, ctx.sched(host), ctx.facts)
    words = verbatim(ctx.cluster, ctx.facts, host)
    out = []
    for t in templates:
        try:
            out.append(cmd.render(t, values, words))
        except KeyError:
            continue  # a value this step cannot have yet: not part of its plan
    return out


async def _current(ctx: StepContext, host: str, field_: str) -> tuple[str, bytes]:
    path = host_values(ctx.cluster, ctx.sched(host), ctx.facts)[field_]
    return path, await ctx.remote.read_file(host, path)


async def make_plan(ctx: StepContext) -> Plan:
    """What a step that changes something will send, rendered now: the plan a person
    approves (runbook.plan). File edits carry their exact new content and a diff against
    the file as it is on the host now."""
    step = ctx.step
    plan = Plan()
    edits = step.file_edits
    hosts = ctx.targets()
    if edits is not None:
        for h in hosts:
            for field_, content in edits(ctx, h):
                path, before = await _current(ctx, h, field_)
                after = content if isinstance(content, bytes) else content(before)
                plan.edit(h, path, before, after)
    for h in hosts:
        commands = _render_each(ctx, step.commands, h)
        if edits is not None:
            # Only the writes of the files this host has an edit for.
            paths = {shlex.quote(p) for p in plan.files.get(h, {})}
            commands = [c for c in commands if any(f" {q} " in f" {c} " for q in paths)]
        if commands:
            plan.commands[h] = commands
        plan.reads[h] = _render_each(ctx, step.reads, h)
    if step.extend_plan is not None:
        await step.extend_plan(ctx, plan)
    return plan


async def plan_copy(ctx: StepContext, plan: Plan) -> None:
    """The backup's copy to the leader (the step placing it), bound by the source's
    sha256; nothing before the leader is known."""
    if not ctx.facts.get("leader"):
        return
    src = place_source(ctx)
    if src is None:
        return
    plan.reads.setdefault(src, []).extend(_render_each(ctx, ctx.step.reads, src))
    leader = ctx.leader
    has = await ctx.run(render_for(ctx, "test -f {backup_path}", [leader]), record=False)
    if has[leader].ok:
        return
    r = await ctx.run(render_for(ctx, "sha256sum {backup_path}", [src]), record=False)
    words = r[src].stdout.split() if r[src].ok else []
    if words:
        path = host_values(ctx.cluster, ctx.sched(leader), ctx.facts)["backup_path"]
        plan.copy(leader, path, words[0], 0, src)


# A file edit: the field it edits, and its new content (given, or made from the file
# as it is on the host when the plan is rendered).
Edit = tuple[str, bytes | Callable[[bytes], bytes]]


def edits_admin(ctx: StepContext, h: str) -> list[Edit]:
    original = unb64(ctx.facts["originals"][h]["admin_clusters_json"]["b64"])
    listen = host_paths(ctx.facts, h).get("listen") or "localhost"
    return [
        ("admin_clusters_json", direct_clusters_json(original, ctx.cluster, ctx.sched(h), listen))
    ]


def _env_edit(edit: Callable[[str], str]) -> Callable[[bytes], bytes]:
    return lambda current: edit(current.decode()).encode()


def edits_disable(ctx: StepContext, h: str) -> list[Edit]:
    return [("env_file", _env_edit(envfile.disable))]


def edits_auth(ctx: StepContext, h: str) -> list[Edit]:
    if h not in (ctx.facts.get("auth_hosts") or []):
        return []
    return [("env_file", _env_edit(envfile.drop_auth))]


def edits_revert(ctx: StepContext, h: str) -> list[Edit]:
    original = (ctx.facts.get("originals") or {}).get(h)
    if not original:
        return []
    return [(f, unb64(original[f]["b64"])) for f in ("env_file", "admin_clusters_json")]


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
            # A RemoteError already names host and path: keep only its reason.
            return f"cannot read {path}: {reason_of(exc)}"

    hosts = ctx.hosts
    return dict(zip(hosts, await asyncio.gather(*(one(h) for h in hosts)), strict=True))


def backup_age(
    name: str, now: datetime | None = None, offset: timezone | None = None
) -> float | None:
    """Seconds since the time in a backup's name, read in the zone `offset` of the host
    that wrote it (the bot's own zone when unknown: less exact, see runbook.backups)."""
    taken = backup_time(name)
    if taken is None:
        return None
    if offset is None:
        return ((now or datetime.now()) - taken).total_seconds()
    return ((now or datetime.now(UTC)) - taken.replace(tzinfo=offset)).total_seconds()


def lifecycle(v: dict[str, str] | str) -> str:
    if isinstance(v, str):
        return "DOWN"
    for k, val in v.items():
        if k.startswith("scheduler_lifecycle_") and val.strip() in ("1", "1.0"):
            return k.removeprefix("scheduler_lifecycle_")
    return "UNKNOWN"


# ---------------------------------------------------------------- the steps


LIST_BACKUPS = "{!aurora_admin} scheduler_list_backups --bypass-leader-redirect {cluster}"


def parse_backup_list(stdout: str) -> list[str]:
    """`N available backups:` then one name a line, unordered, with temp_ and other files."""
    return [word for line in stdout.splitlines() if is_backup(word := line.strip())]


def backup_facts(
    backup: str | None, cluster: Cluster, taken_at: float | None = None
) -> dict[str, Any]:
    """What the plan needs to know of the chosen backup: its age, and whether too old.

    `taken_at` is when it was written (seconds since the epoch, read on the host that
    holds it); without it the age comes from the name in the bot's own zone."""
    if taken_at is not None:
        age: float | None = time.time() - taken_at
    else:
        age = backup_age(backup) if backup else None
    too_old = backup is None or (
        age is not None and age > cluster.max_backup_age_delta.total_seconds()
    )
    return {
        "backup": backup,
        "backup_age": age,
        "backup_too_old": too_old,
        "backup_taken_at": taken_at,
    }


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


# What a scheduler that came up shows on /vars: disabled (the bogus Mesos master) a
# replica stays STORAGE_PREPARED and the leader waits for a registration that never comes;
# with its normal flags the leader goes on to ACTIVE (apache/aurora
# `src/main/java/org/apache/aurora/scheduler/SchedulerLifecycle.java`).
UP_DISABLED = ("STORAGE_PREPARED", "LEADER_AWAITING_REGISTRATION")
UP_NORMAL = (*UP_DISABLED, "ACTIVE")
LOG_TAIL_LINES = 8


async def log_tails(
    ctx: StepContext, hosts: list[str], lines: int = LOG_TAIL_LINES
) -> dict[str, str]:
    """The last lines of each host's scheduler log (journald or `scheduler_log`)."""
    commands = {h: log_read_command(ctx.cluster, ctx.sched(h), lines) for h in hosts}
    res = await ctx.run(commands, record=False)
    out = {}
    for h, r in res.items():
        text = (r.stdout or "").strip()
        out[h] = (
            text
            if r.ok and text
            else f"(log unreadable: {'; '.join(_failures({h: r})) or 'empty'})"
        )
    return out


async def came_up(
    ctx: StepContext, hosts: list[str], accept: tuple[str, ...], wait: float | None = None
) -> Outcome:
    """Every host answers /vars in one of the `accept` lifecycle states within the
    bounded wait. The packaged unit has no `Type=`, so systemd calls a scheduler active as
    soon as it forks, also one that exits at once on a bad flag: only /vars tells."""
    if wait is None:
        wait = min(ctx.timing.start_wait, parse_duration(ctx.cluster.start_wait).total_seconds())
    deadline = time.monotonic() + wait
    while True:
        got = await ctx.vars()
        states = {h: lifecycle(got.get(h, "no answer")) for h in hosts}
        bad = {h: st for h, st in states.items() if st not in accept}
        if not bad:
            shown = ", ".join(f"{h} {st}" for h, st in states.items())
            return Outcome(True, f"every scheduler came up ({shown})", {"states": states})
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(ctx.timing.poll)
    tails = await log_tails(ctx, sorted(bad))
    lines = []
    for h, st in bad.items():
        seen = "no answer on /vars" if st == "DOWN" else f"/vars says {st}"
        lines.append(f"{h} did not come up within {wait:g}s ({seen}); its last log lines:")
        lines += [f"    {line}" for line in tails[h].splitlines()[-LOG_TAIL_LINES:]]
    return Outcome(False, "\n".join(lines), {"states": states})


async def _start(ctx: StepContext, accept: tuple[str, ...]) -> Outcome:
    results = await ctx.run(render_for(ctx, "{!service_start}"))
    failures = _failures(results)
    if failures:
        return Outcome(False, "; ".join(failures))
    return await came_up(ctx, ctx.hosts, accept)


async def start_disabled(ctx: StepContext) -> Outcome:
    """prep.start, log.start: the schedulers come up disabled."""
    return await _start(ctx, UP_DISABLED)


async def start(ctx: StepContext) -> Outcome:
    """A start with the normal flags (the revert's): only once the log is a real one."""
    return await _start(ctx, UP_NORMAL)


# A check looks; it does not wait out a start (a scheduler just started gets a moment).
CHECK_WAIT = 5.0


async def check_came_up_disabled(ctx: StepContext) -> Outcome:
    return await came_up(ctx, ctx.hosts, UP_DISABLED, CHECK_WAIT)


async def check_came_up(ctx: StepContext) -> Outcome:
    return await came_up(ctx, ctx.hosts, UP_NORMAL, CHECK_WAIT)


def _admin_entry(cluster: Cluster, s: Scheduler, listen: str) -> dict[str, Any]:
    return {
        "name": cluster.aurora_name,
        "scheduler_uri": f"http://{listen}:{cluster.http_port_of(s)}",
        "auth_mechanism": "UNAUTHENTICATED",
    }


def direct_clusters_json(
    original: bytes, cluster: Cluster, s: Scheduler, listen: str = "localhost"
) -> bytes:
    """The clusters.json with the cluster's entry pointing at the local scheduler, no zk.

    `listen` is where the scheduler's HTTP server listens: localhost, unless its flags
    bind Jetty to one address with `-ip` (JettyServerModule: `connector.setHost`), where
    localhost would find nothing."""
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
            e["scheduler_uri"] = _admin_entry(cluster, s, listen)["scheduler_uri"]
            replaced = True
        out.append(e)
    if not replaced:
        out.append(_admin_entry(cluster, s, listen))
    return (json.dumps(out, indent=2) + "\n").encode()


WRITE = "sudo -n tee {target} > /dev/null"


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
            listen = host_paths(ctx.facts, h).get("listen") or "localhost"
            contents[h] = direct_clusters_json(original, ctx.cluster, ctx.sched(h), listen)
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
    static = await check_disabled(ctx)
    if not static.ok:
        return static
    return await check_argv(ctx, disabled=True)


async def check_argv(ctx: StepContext, disabled: bool) -> Outcome:
    """The file as written, evaluated on the host the way the packaged startup script
    evaluates it (bash sources it): the scheduler's argv differs from the one preflight
    saw only in the intended flags, each once (disabled), or not at all (reverted)."""
    before = ctx.facts.get("argv") or {}
    hosts = [h for h in ctx.hosts if h in before]
    if not hosts:
        return Outcome(True, "the three values, each once, on every host")
    res = await ctx.run(render_for(ctx, ARGV_NOW, hosts), record=False)
    problems = []
    for h in hosts:
        r = res[h]
        if not r.ok:
            problems.append(f"{h}: the file does not evaluate: {'; '.join(_failures({h: r}))}")
            continue
        wanted: dict[str, str | None] = {}
        if disabled:
            wanted.update(envfile.DISABLED_ARGV)
            if h in (ctx.facts.get("auth_hosts") or []):
                wanted.update(envfile.NO_AUTH_ARGV)
        try:
            after = envfile.parse_argv(r.stdout.encode(errors="surrogateescape"))
        except envfile.EnvFileError as exc:
            problems.append(f"{h}: {exc}")
            continue
        problems += [f"{h}: {p}" for p in envfile.argv_changes(before[h], after, wanted)]
    if problems:
        return Outcome(False, "; ".join(problems))
    what = "only the intended flags differ, each once" if disabled else "the same as before"
    return Outcome(True, f"the scheduler's argv, evaluated as the startup script does: {what}")


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
    results = await ctx.run(render_for(ctx, ctx.step.commands[0]))
    failures = _failures(results)
    if failures:
        return Outcome(False, "; ".join(failures))
    archives = {}
    for h, r in results.items():
        words = r.stdout.split()
        digest = words[0] if words and len(words[0]) == 64 else ""
        path = host_values(ctx.cluster, ctx.sched(h), ctx.facts)["archive"]
        archives[h] = {"path": path, "sha256": digest}
    await ctx.learn(archives=archives)
    return await check_archived(ctx)


async def _on_every_host(ctx: StepContext, template: str, ok: str, bad: str) -> Outcome:
    """A read-only check: `template` exits 0 on every target."""
    res = await ctx.run(render_for(ctx, template), record=False)
    failing = [h for h, r in res.items() if not r.ok]
    return Outcome(not failing, ok if not failing else f"{bad} on {', '.join(failing)}")


# The archive is good when tar can read it whole and it holds every file of the log
# (ARCHIVE_MATCHES).


async def check_archived(ctx: StepContext) -> Outcome:
    res = await ctx.run(render_for(ctx, ARCHIVE_MATCHES), record=False)
    bad = [h for h, r in res.items() if not r.ok]
    if bad:
        return Outcome(
            False,
            "no archive that tar can read and that holds every file of the log on "
            + ", ".join(bad),
        )
    sums = await ctx.run(render_for(ctx, ARCHIVE_SUM), record=False)
    archives = {
        h: {
            "path": host_values(ctx.cluster, ctx.sched(h), ctx.facts)["archive"],
            "sha256": (r.stdout.split() or [""])[0] if r.ok else "",
        }
        for h, r in sums.items()
    }
    await ctx.learn(archives=archives)
    return Outcome(True, "the tarball lists every file of the log on every host; sha256 kept")


PUT_BACK = "sudo -n find {log_dir} -mindepth 1 -delete && sudo -n tar -xzf {archive} -C {log_dir}"


async def put_back_log(ctx: StepContext, archives: Mapping[str, Mapping[str, str]]) -> Outcome:
    """The way back after the wipe: every scheduler stopped, each archive's sha256 as
    log.archive recorded it, then the log directory emptied and the archive unpacked
    into it (as root, so its files keep the owners they had: the scheduler's user)."""
    stopped = await stop(ctx)
    if not stopped.ok:
        return Outcome(False, f"not every scheduler stopped: {stopped.summary}")
    commands = {}
    for h in ctx.hosts:
        path = archives[h]["path"]
        commands[h] = cmd.render("sudo -n sha256sum {p}", {"p": cmd.path(path)})
    sums = await ctx.run(commands)
    bad = []
    for h, r in sums.items():
        got = (r.stdout.split() or [""])[0] if r.ok else ""
        if got != archives[h]["sha256"]:
            bad.append(
                f"{h}: {archives[h]['path']} has sha256 {got[:12] or '(unreadable)'}…, log.archive recorded {archives[h]['sha256'][:12]}…"
            )
    if bad:
        return Outcome(
            False,
            "the archives are not the ones log.archive wrote; nothing was put back: "
            + "; ".join(bad),
        )
    facts = dict(ctx.facts)
    put = {}
    for h in ctx.hosts:
        values = host_values(ctx.cluster, ctx.sched(h), facts)
        values["archive"] = cmd.path(archives[h]["path"])
        put[h] = cmd.render(PUT_BACK, values)
    results = await ctx.run(put)
    failures = _failures(results)
    if failures:
        return Outcome(False, "putting the log back failed: " + "; ".join(failures))
    check = {}
    for h in ctx.hosts:
        values = host_values(ctx.cluster, ctx.sched(h), facts)
        values["archive"] = cmd.path(archives[h]["path"])
        check[h] = cmd.render(ARCHIVE_MATCHES, values)
    res = await ctx.run(check, record=False)
    left = [h for h, r in res.items() if not r.ok]
    if left:
        return Outcome(False, f"the log directory does not match its archive on {', '.join(left)}")
    return Outcome(True, "the old log is back on every host (sha256 of each archive checked)")


async def wipe_preview(ctx: StepContext) -> dict[str, Any]:
    res = await ctx.run(
        render_for(ctx, WIPE_PREVIEW),
        record=False,
    )
    archives = ctx.facts.get("archives") or {}
    out: dict[str, Any] = {}
    for h, r in res.items():
        parts = r.stdout.split()
        out[h] = (
            {"files": int(parts[0]), "bytes": int(parts[1])}
            if r.ok and len(parts) == 2 and all(p.isdigit() for p in parts)
            else {"error": r.error or r.stderr.strip()}
        )
        # The way back after the wipe exists only where log.archive left a tarball.
        out[h]["archive"] = (
            (archives.get(h) or {}).get("path") if (archives.get(h) or {}).get("sha256") else None
        )
    return out


async def wipe(ctx: StepContext) -> Outcome:
    return await _run_then(ctx, ctx.step.commands[0], check_wiped)


async def check_wiped(ctx: StepContext) -> Outcome:
    return await _on_every_host(ctx, WIPED, "directory empty everywhere", "not empty")


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
    # A source whose data cannot tell the schedulers apart abstains (bot.leader).
    abstained = [
        src
        for src in sources
        if all(str(row.get(src, "")).startswith("cannot tell") for row in table.values())
    ]
    agreed = [src for src in sources if src not in abstained]
    note = f"; {', '.join(abstained)} cannot tell" if abstained else ""
    return Outcome(
        True, f"leader: {leader} (agreed by {', '.join(agreed)}{note})\n{rows}", {"table": table}
    )


def place_source(ctx: StepContext) -> str | None:
    """The host restore.place copies the backup from: the first other holder."""
    holders = ctx.facts.get("backups", {}).get(ctx.facts.get("backup") or "", [])
    others = [h for h in holders if h != ctx.facts.get("leader")]
    return others[0] if others else None


async def place(ctx: StepContext) -> Outcome:
    backup = ctx.facts.get("backup")
    if not backup:
        return Outcome(False, "no backup chosen")
    leader = ctx.leader
    src = place_source(ctx)
    has = await ctx.run(render_for(ctx, "test -f {backup_path}", [leader]), record=False)
    source_sum = None
    if has[leader].ok:
        if src is not None:
            r = await ctx.run(render_for(ctx, "sha256sum {backup_path}", [src]), record=False)
            source_sum = r[src].stdout.split()[0] if r[src].ok and r[src].stdout.split() else None
    else:
        if src is None:
            return Outcome(False, f"no scheduler holds {backup}")
        src_path = host_values(ctx.cluster, ctx.sched(src), ctx.facts)["backup_path"]
        data = await ctx.remote.read_file(src, src_path)
        source_sum = _sha(data)
        r = await ctx.run(render_for(ctx, ctx.step.commands[0], [leader]), stdin={leader: data})
        if not r[leader].ok:
            return Outcome(False, "; ".join(_failures(r)))
    r = await ctx.run(render_for(ctx, ctx.step.commands[1], [leader]))
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
    r = await ctx.run(render_for(ctx, PRINT_RECOVERY, [ctx.leader]), record=record)
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
    r = await ctx.run(
        {ctx.leader: cmd.render(DELETE_TASKS, values, verbatim(ctx.cluster, ctx.facts, ctx.leader))}
    )
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
    reverted = await check_reverted(ctx)
    if not reverted.ok:
        return reverted
    argv = await check_argv(ctx, disabled=False)
    return reverted if argv.ok else argv


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
        up = await came_up(ctx, [h], UP_NORMAL)
        if not up.ok:
            return up
    return await came_up(ctx, ctx.hosts, UP_NORMAL)


async def verify(ctx: StepContext) -> Outcome:
    leader, table = await _wait_for_leader(ctx, "ACTIVE", ctx.timing.verify_wait)
    if leader is None:
        return Outcome(False, f"no ACTIVE leader within {ctx.timing.verify_wait:g}s: {table}")
    v = (await ctx.vars())[leader]
    expected = ctx.facts.get("reviewed_count")
    active = active_task_count(v) if isinstance(v, dict) else None
    await ctx.learn(verified_leader=leader, active_tasks=active)
    compared = (
        f"task_store_<S> summed over the active states ({', '.join(ACTIVE_STATES)})"
        f" = {active}, the reviewed listing {expected}"
    )
    observed = await observe_kills(ctx)
    if observed is not None and not observed.ok:
        return observed
    kills_text = f"; {observed.summary}" if observed is not None else ""
    if expected is not None and active is not None and active != expected:
        return Outcome(False, f"{leader} is ACTIVE, but {compared}{kills_text}")
    if active is None:
        return Outcome(
            True, f"{leader} is ACTIVE (its /vars has no task_store_ gauges to compare){kills_text}"
        )
    if expected is None:
        return Outcome(
            True,
            f"{leader} is ACTIVE with {active} active tasks (nothing reviewed to compare){kills_text}",
        )
    return Outcome(
        True, f"{leader} is ACTIVE with {active} active tasks, as reviewed ({compared}){kills_text}"
    )


async def observe_kills(ctx: StepContext) -> Outcome | None:
    """After the failover the leader reconciles and kills what the backup does not know:
    watch the framework's tasks (bounded by the verify wait) until every forecast kill
    happened, and compare. More kills than forecast fail the step. None without a
    forecast."""
    kills = ctx.facts.get("kills") or {}
    info = ctx.facts.get("backup_info") or {}
    if not kills.get("known") or ctx.mesos is None or not ctx.cluster.mesos_master:
        return None
    before = set(kills.get("running_ids") or [])
    predicted = set(kills.get("ids") or [])
    deadline = time.monotonic() + ctx.timing.verify_wait
    while True:
        try:
            running = await ctx.mesos(ctx.cluster.mesos_master, info.get("framework_id", ""), 10.0)
        except Exception as exc:
            return Outcome(False, f"the Mesos master cannot be read to see the kills: {exc}")
        gone = before - {t.task_id for t in running}
        if predicted <= gone or time.monotonic() >= deadline:
            break
        await asyncio.sleep(ctx.timing.poll)
    unforecast = sorted(gone - predicted)
    await ctx.learn(
        kills_observed={
            "observed": len(gone),
            "ids": sorted(gone)[:20000],
            "unforecast": unforecast[:20000],
            "still_running": sorted(predicted - gone)[:20000],
        }
    )
    text = f"{len(gone)} tasks killed, {len(predicted)} forecast"
    if len(gone) > len(predicted) or unforecast:
        return Outcome(
            False,
            f"more tasks were killed than forecast: {text}; not forecast: {', '.join(unforecast[:5])}",
        )
    return Outcome(True, text)


# Aurora's ACTIVE_STATES (runbook.snapshot): TaskVars exports `task_store_<STATUS>` for
# every ScheduleStatus, terminal ones too (`scheduler/TaskVars.java`): count only these.
ACTIVE_STATES = tuple(sorted(snapshot.ACTIVE_STATES))


def active_task_count(v: Mapping[str, str]) -> int | None:
    """The active tasks a scheduler's /vars counts, or None without task_store_ gauges."""
    found = False
    total = 0
    for status in ACTIVE_STATES:
        raw = v.get(f"task_store_{status}")
        if raw is None:
            continue
        found = True
        try:
            total += int(float(raw))
        except ValueError:
            continue
    return total if found else None


def _verdict(finished: bool, text: str, verdict: str) -> Outcome:
    return Outcome(finished, f"{verdict}: {text}", {"verdict": verdict})


FINISHED, NOT_RUN, UNKNOWN = "finished", "did not run", "cannot tell"


async def check_files_as_planned(ctx: StepContext) -> Outcome:
    """Each edited file is as the plan would leave it (finished), as it was (did not
    run), or neither (cannot tell), by sha256."""
    if ctx.plan is None or not ctx.plan.files:
        return _verdict(False, "no plan of the edit is kept", UNKNOWN)
    done: list[str] = []
    untouched: list[str] = []
    other: list[str] = []
    for host, edits in ctx.plan.files.items():
        for path, edit in edits.items():
            try:
                data = await ctx.remote.read_file(host, path)
            except Exception as exc:
                other.append(f"{host}:{path} unreadable ({reason_of(exc)})")
                continue
            digest = _sha(data)
            (
                done
                if digest == edit["after"]
                else untouched
                if digest == edit["before"]
                else other
            ).append(f"{host}:{path}")
    if not untouched and not other:
        return _verdict(True, "every file is as the plan leaves it", FINISHED)
    if not done and not other:
        return _verdict(False, "every file is as it was before", NOT_RUN)
    return _verdict(
        False,
        f"edited: {', '.join(done) or 'none'}; as before: {', '.join(untouched) or 'none'}"
        + (f"; neither: {', '.join(other)}" if other else ""),
        UNKNOWN,
    )


async def check_initialized(ctx: StepContext) -> Outcome:
    res = await ctx.run(render_for(ctx, WIPED), record=False)
    empty = [h for h, r in res.items() if r.ok]
    if not empty:
        return _verdict(True, "every replica holds an initialized log", FINISHED)
    if len(empty) == len(res):
        return _verdict(False, "every log directory is still empty", NOT_RUN)
    return _verdict(False, f"still empty on {', '.join(empty)}", UNKNOWN)


async def check_placed(ctx: StepContext) -> Outcome:
    leader = ctx.leader
    r = await ctx.run(render_for(ctx, ctx.step.commands[1], [leader]), record=False)
    if not r[leader].ok:
        return _verdict(False, f"{leader} has no {ctx.facts.get('backup')}", NOT_RUN)
    digest = (r[leader].stdout.split() or [""])[0]
    copies = [f["after"] for f in (ctx.plan.files.get(leader, {}) if ctx.plan else {}).values()]
    if copies and digest not in copies:
        return _verdict(False, f"{leader} holds a file of another sha256 ({digest[:12]}…)", UNKNOWN)
    return _verdict(True, f"{leader} holds the backup, sha256 {digest[:12]}…", FINISHED)


async def _staged(ctx: StepContext, host: str) -> tuple[bool | None, str]:
    """Is a recovery staged on `host`: True, False ("No backup loaded."), or None."""
    r = await ctx.run(render_for(ctx, PRINT_RECOVERY, [host]), record=False)
    res = r[host]
    said = (res.stderr + res.stdout).strip()
    if res.ok:
        return True, "a recovery is staged"
    # Recovery.java: "No backup loaded." when nothing is staged.
    if "No backup loaded" in said:
        return False, "nothing is staged"
    return (
        None,
        f"the client failed ({(said.splitlines() or [f'exit {res.exit_status}'])[-1][:200]})",
    )


async def check_staged(ctx: StepContext) -> Outcome:
    leader = ctx.leader
    staged, why = await _staged(ctx, leader)
    if staged:
        return _verdict(True, f"{why} on {leader}", FINISHED)
    if staged is False:
        return _verdict(False, f"{why} on {leader}", NOT_RUN)
    return _verdict(False, f"on {leader}: {why}", UNKNOWN)


async def check_committed(ctx: StepContext) -> Outcome:
    """After a commit the leader it ran on shuts down (a failover): still leading with
    the recovery staged means it did not run."""
    old = ctx.leader
    state = lifecycle((await ctx.vars()).get(old, "no answer"))
    if state == "LEADER_AWAITING_REGISTRATION":
        staged, why = await _staged(ctx, old)
        if staged:
            return _verdict(
                False, f"{old} still leads with the recovery staged (/vars: {state})", NOT_RUN
            )
        return _verdict(False, f"{old} still leads but {why} (/vars: {state})", UNKNOWN)
    return _verdict(
        True,
        f"{old} is no longer the leader (/vars: {state}): it shut down after the commit",
        FINISHED,
    )


async def nothing(ctx: StepContext) -> Outcome:
    return Outcome(True, ctx.step.check)


async def block_traffic(ctx: StepContext) -> Outcome:
    # Unreachable while block_configured refuses every approval.
    return Outcome(False, "no block_traffic command is configured for this cluster: skip this step")


async def all_stopped(ctx: StepContext) -> str | None:
    out = await check_stopped(ctx)
    return None if out.ok else f"every scheduler must be stopped first: {out.summary}"


async def block_configured(ctx: StepContext) -> str | None:
    # The cluster file has no traffic-block command yet: the step can only be skipped.
    return "no block_traffic command is configured for this cluster: skip this step"


def backup_too_old(facts: Mapping[str, Any]) -> bool:
    """A condition: the chosen backup is older than the cluster's maximum age (or none)."""
    return bool(facts.get("backup_too_old"))


def auth_flag_present(facts: Mapping[str, Any]) -> bool:
    """A condition: some host's flags hold -http_authentication_mechanism."""
    return bool(facts.get("auth_hosts"))
