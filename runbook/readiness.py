"""Restore readiness: the read-only half of the procedure, every check for every host.

A restore runs once in years and fails on what nobody looked at since (issue 14). This
runs the gates `prep.preflight` is made of (runbook.preflight) one by one, so that one
problem does not hide the next, and turns each into rows `Check(name, host, ok, cause)`.
It changes nothing: it creates no restore, takes no lock, writes no file on a host and
sends no stop, start, edit or delete. Every command it sends is a read (`record=False`),
the gate functions themselves are preflight's, reused, not copied.

Two checks preflight has no gate for:
- the disable edit's revert gives back the original byte for byte: the original bytes
  go through the base64 round trip the restore stores them in, and their sha256 must
  come back the same;
- the archive of the log (`<log_dir>.aurora-restore-<stamp>.tar.gz`, next to the log
  dir) has room: `df -Pk` of the log dir's parent against `du -sk` of the log dir.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from typing import Any

from runbook import envfile
from runbook.actions import (
    StepContext,
    _b64,
    _failures,
    _read_all,
    _sha,
    direct_clusters_json,
    host_values,
    lifecycle,
    render_for,
    unb64,
)
from runbook.backups import parse_names
from runbook.clusters import Cluster
from runbook.preflight import (
    LIST_DIR,
    SUDO_USES,
    _check_dirs,
    _check_sudo,
    _edited_env,
    _evaluate_argv,
    _find_clients,
    _first_word,
    _locate_env_files,
    _offset,
    _which,
    _zones,
    flag_value,
    prove_backup,
    quorum_problems,
)
from runbook.step import Procedure, Role

CLUSTER = "cluster"


@dataclass(frozen=True)
class Check:
    """One check on one host ("cluster" for a check of the whole cluster)."""

    name: str
    host: str
    ok: bool
    cause: str = ""

    def line(self) -> str:
        text = f"{'PASS' if self.ok else 'FAIL'} {self.name}  {self.host}"
        return text + (f": {self.cause}" if self.cause and not self.ok else "")


def make_context(
    cluster: Cluster,
    remote: Any,
    probe: Any,
    *,
    procedure: Procedure,
    detect: Any = None,
    sources: Any = None,
    mesos: Any = None,
) -> tuple[StepContext, dict[str, Any]]:
    """A StepContext for the procedure's preflight step (Role.PREFLIGHT) with no restore
    behind it: `learn` only updates a dict in memory (runbook.engine's `_context` also
    stores it)."""
    step = procedure.first(Role.PREFLIGHT)
    if step is None:
        raise ValueError(f"procedure {procedure.name!r} has no preflight step")
    facts: dict[str, Any] = {}

    async def learn(**values: Any) -> None:
        facts.update(values)

    ctx = StepContext(
        cluster,
        step,
        facts,
        remote,
        probe,
        learn,
        detect=detect,
        sources=sources,
        mesos=mesos,
    )
    return ctx, facts


def _narrowed(ctx: StepContext, hosts: list[str]) -> StepContext:
    """The same context over `hosts` only (those SSH reached): one SSH failure is one row,
    not one per gate."""
    cluster = ctx.cluster.model_copy(
        update={"schedulers": [s for s in ctx.cluster.schedulers if s.host in hosts]}
    )
    out = StepContext(
        cluster,
        ctx.step,
        ctx.facts,
        ctx.remote,
        ctx.probe,
        ctx.learn,
        timing=ctx.timing,
        detect=ctx.detect,
        sources=ctx.sources,
        mesos=ctx.mesos,
    )
    return out


def _by_host(name: str, hosts: list[str], problems: list[str]) -> list[Check]:
    """Rows from preflight's "host: why" problem lines: one per host, failing with its
    lines, passing without."""
    rows = []
    for h in hosts:
        mine = [p.removeprefix(f"{h}: ") for p in problems if p.startswith(f"{h}: ")]
        rows.append(Check(name, h, not mine, "; ".join(mine)))
    return rows


async def _ssh(ctx: StepContext) -> list[Check]:
    res = await ctx.run({h: "true" for h in ctx.hosts}, record=False)
    return [
        Check(
            "ssh reached, host key checked",
            h,
            r.ok,
            "" if r.ok else "; ".join(_failures({h: r})).removeprefix(f"{h}: "),
        )
        for h, r in res.items()
    ]


async def _env_files(ctx: StepContext, total: int) -> tuple[list[Check], dict[str, str]]:
    """The env file's path per host; the rows for finding, reading and understanding it,
    clusters.json, the revert, and the argv the startup script computes. `total`: the
    cluster's schedulers, reached or not, whose majority the quorum must be."""
    rows: list[Check] = []
    located = await _locate_env_files(ctx)
    found = {h: p for h, p in located.items() if not p.startswith("problem: ")}
    for h, p in located.items():
        rows.append(Check("env file found", h, h in found, p.removeprefix("problem: ")))
    if not found:
        return rows, {}
    paths: dict[str, dict[str, str]] = {h: {"env_file": p} for h, p in found.items()}
    ctx.facts.update(paths=paths)
    here = _narrowed(ctx, list(found))
    envs = await _read_all(here, "env_file")
    jsons = await _read_all(here, "admin_clusters_json")
    evaluate: dict[str, tuple[str, str, bytes, bool]] = {}
    for h in here.hosts:
        env, cj = envs[h], jsons[h]
        rows.append(Check("clusters.json readable", h, isinstance(cj, bytes), str(cj)))
        if isinstance(cj, bytes):
            try:
                direct_clusters_json(cj, ctx.cluster, ctx.sched(h))
                rows.append(Check("clusters.json editable", h, True))
            except ValueError as exc:
                rows.append(Check("clusters.json editable", h, False, str(exc)))
            rows.append(_revert_check("clusters.json revert restores the original", h, cj))
        if not isinstance(env, bytes):
            rows.append(Check("env file understood", h, False, env))
            continue
        rows.append(_revert_check("env file revert restores the original", h, env))
        try:
            text = env.decode()
        except UnicodeDecodeError:
            rows.append(Check("env file understood", h, False, f"{found[h]} is not UTF-8 text"))
            continue
        edited, has_auth, why = _edited_env(text)
        rows.append(
            Check("env file understood", h, edited is not None, f"{found[h]}: " + "; ".join(why))
        )
        if edited is None:
            continue
        settings = envfile.settings(text)
        flavour = envfile.flavour(text)
        paths[h].update(
            flavour=flavour,
            log_dir=settings.get("log_dir", ""),
            backup_dir=settings.get("backup_dir", ""),
            quorum=settings.get("quorum", ""),
        )
        values = host_values(ctx.cluster, ctx.sched(h), {"paths": paths})
        missing = [n for n in ("log_dir", "backup_dir") if n not in values]
        rows.append(
            Check(
                "log and backup dirs known",
                h,
                not missing,
                f"{found[h]} does not say {' or '.join(missing)}; set them in the cluster file",
            )
        )
        evaluate[h] = (found[h], flavour, edited.encode(), has_auth)
    ctx.facts.update(paths=paths, archive_stamp="check")
    if not evaluate:
        return rows, found
    evaluated = await _evaluate_argv(ctx, evaluate)
    for h, (problems, _argv) in evaluated.items():
        rows.append(
            Check(
                "env file edit changes only the intended flags",
                h,
                not problems,
                f"{found[h]}: " + "; ".join(problems),
            )
        )
    argvs = {h: argv for h, (_p, argv) in evaluated.items()}
    why = quorum_problems(argvs, total)
    rows.append(
        Check(
            "quorum size the same and a majority",
            _odd_quorum(argvs, total),
            not why,
            "; ".join(why),
        )
    )
    return rows, found


def _odd_quorum(argvs: dict[str, list[str]], schedulers: int) -> str:
    """The host(s) whose -native_log_quorum_size differs from the others' (on a tie, from
    the majority of all schedulers), for the quorum row; "cluster" when none stands out."""
    sizes = {h: flag_value(a, "-native_log_quorum_size") or "1" for h, a in argvs.items() if a}
    if len(set(sizes.values())) < 2:
        return CLUSTER
    counts = Counter(sizes.values())
    top = max(counts.values())
    usual = [v for v, n in counts.items() if n == top]
    majority = str(schedulers // 2 + 1)
    common = majority if majority in usual or len(usual) > 1 else usual[0]
    odd = sorted(h for h, v in sizes.items() if v != common)
    return ", ".join(odd) or CLUSTER


def _revert_check(name: str, host: str, original: bytes) -> Check:
    """The revert writes back the bytes stored as base64 at preflight: they must come back
    exactly (sha256 before = after the round trip)."""
    back = unb64(_b64(original))
    same = back == original and _sha(back) == _sha(original)
    return Check(name, host, same, "" if same else "the base64 round trip changes the bytes")


async def _tools(ctx: StepContext) -> list[Check]:
    _clients, problems = await _find_clients(ctx)
    rows = _by_host("aurora client on PATH", ctx.hosts, problems)
    mesos_log = _first_word(ctx.cluster.mesos_log)
    found = await _which(ctx, {h: mesos_log for h in ctx.hosts})
    rows += [
        Check(f"{mesos_log} on PATH", h, where is not None, f"{mesos_log!r} is not on PATH")
        for h, where in found.items()
    ]
    return rows


async def _sudo(ctx: StepContext, templates: tuple[str, ...]) -> list[Check]:
    """One row per sudo use and host, so a missing rule names its command."""
    runs: list[tuple[str, Awaitable[list[str]]]] = [
        (f"sudo allows {t}", _check_sudo(ctx, (t,), service=False)) for t in templates
    ]
    results = await asyncio.gather(*(r for _n, r in runs))
    rows: list[Check] = []
    for (name, _r), problems in zip(runs, results, strict=True):
        rows += _by_host(name, ctx.hosts, problems)
    return rows


async def _service_sudo(ctx: StepContext) -> list[Check]:
    """sudo for mesos-log initialize (as the scheduler user), the service and the journal."""
    return _by_host("sudo allows the service commands", ctx.hosts, await _check_sudo(ctx, ()))


async def _dirs(ctx: StepContext) -> list[Check]:
    problems = await _check_dirs(ctx)
    log = [p for p in problems if "log directory" in p]
    backup = [p for p in problems if "backup directory" in p]
    return _by_host("log dir there", ctx.hosts, log) + _by_host(
        "backup dir there", ctx.hosts, backup
    )


async def _room(ctx: StepContext) -> list[Check]:
    """The archive of the log goes next to it: its parent needs at least the log's size."""
    df = await ctx.run(render_for(ctx, "df -Pk {log_parent}"), record=False)
    du = await ctx.run(render_for(ctx, "sudo -n du -sk {log_dir}"), record=False)
    rows = []
    for h in ctx.hosts:
        free, used = _df_free(df[h].stdout), _du_size(du[h].stdout)
        if not df[h].ok or not du[h].ok or free is None or used is None:
            why = "; ".join(_failures({h: df[h], "du": du[h]})) or "unreadable df/du output"
            rows.append(Check("room for the log archive", h, False, f"cannot tell: {why}"))
            continue
        rows.append(
            Check(
                "room for the log archive",
                h,
                free >= used,
                f"{free} KiB free next to the log dir, the log takes {used} KiB",
            )
        )
    return rows


def _df_free(text: str) -> int | None:
    lines = text.strip().splitlines()
    fields = lines[-1].split() if len(lines) >= 2 else []
    return int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else None


def _du_size(text: str) -> int | None:
    first = text.split()[0] if text.split() else ""
    return int(first) if first.isdigit() else None


async def _backups(ctx: StepContext) -> list[Check]:
    listing = await ctx.run(render_for(ctx, LIST_DIR), record=False)
    zones = await _zones(ctx)
    holders: dict[str, list[str]] = {}
    rows = []
    for h, r in listing.items():
        if not r.ok:
            rows.append(Check("backups there", h, False, "; ".join(_failures({h: r}))))
            continue
        names, others = parse_names(
            r.stdout.split("\0"), _offset(zones.get(h, {}).get("offset", ""))
        )
        for name in names:
            holders.setdefault(name, []).append(h)
        where = host_values(ctx.cluster, ctx.sched(h), ctx.facts)["backup_dir"]
        shown = ", ".join(sorted(o for o in others if o)[:3])
        rows.append(
            Check(
                "backups there",
                h,
                bool(names),
                f"no backup in {where}" + (f" (only {shown})" if shown else ""),
            )
        )
    if not holders:
        rows.append(Check("newest backup decodes", CLUSTER, False, "no backup on any scheduler"))
        return rows
    newest = max(holders)
    ctx.facts.update(backup=newest)
    facts, unusable = await prove_backup(ctx, newest, sorted(holders[newest]))
    rows.append(
        Check(f"newest backup decodes ({newest})", CLUSTER, unusable is None, unusable or "")
    )
    kills = facts.get("kills") or {}
    if kills and not kills.get("known") and ctx.cluster.mesos_master:
        rows.append(Check("kill forecast", CLUSTER, False, str(kills.get("why"))))
    elif kills:
        rows.append(Check("kill forecast", CLUSTER, True, str(kills.get("summary", ""))))
    rows += await _sudo(_narrowed(ctx, sorted(holders[newest])), ("tee {backup_path}",))
    return rows


async def _leader(ctx: StepContext) -> list[Check]:
    rows = []
    if ctx.sources is not None:
        usable = await ctx.sources(ctx.cluster, ctx.probe, ctx.remote)
        rows += [
            Check(f"leader source {src} usable", CLUSTER, not why, str(why or ""))
            for src, why in usable.items()
        ]
    states = {h: lifecycle(v) for h, v in (await ctx.vars()).items()}
    leaders = [h for h, s in states.items() if s in ("ACTIVE", "LEADER_AWAITING_REGISTRATION")]
    shown = ", ".join(f"{h} {s}" for h, s in sorted(states.items()))
    rows.append(Check("one leader by /vars", CLUSTER, len(leaders) == 1, shown))
    if ctx.detect is not None:
        report = await ctx.detect(ctx.cluster, ctx.probe, ctx.remote, "ACTIVE")
        rows.append(
            Check(
                "leader sources agree",
                CLUSTER,
                report.leader is not None and not report.problems,
                "; ".join(report.problems) or "no agreed leader",
            )
        )
    return rows


async def _whole_preflight(ctx: StepContext) -> Check:
    """The procedure's own preflight, as a restore would run it (a fresh in-memory fact
    dict, so the gates above do not feed it)."""
    facts: dict[str, Any] = {}

    async def learn(**values: Any) -> None:
        facts.update(values)

    fresh = StepContext(
        ctx.cluster,
        ctx.step,
        facts,
        ctx.remote,
        ctx.probe,
        learn,
        detect=ctx.detect,
        sources=ctx.sources,
        mesos=ctx.mesos,
    )
    name = f"{ctx.step.id} passes"
    try:
        outcome = await ctx.step.run(fresh)
    except Exception as exc:  # one line, never a traceback
        return Check(name, CLUSTER, False, f"{type(exc).__name__}: {exc}")
    lines = [x.removeprefix("- ") for x in outcome.summary.splitlines()[1:]]
    return Check(name, CLUSTER, outcome.ok, "; ".join(lines[:5]))


async def run_checks(ctx: StepContext) -> list[Check]:
    """Every check, host by host; hosts SSH cannot reach get that one failing row. A gate
    that raises is one failing row naming it, and the others still run."""
    rows = await _ssh(ctx)
    reached = [c.host for c in rows if c.ok]
    if not reached:
        return rows
    here = _narrowed(ctx, reached)
    found: dict[str, str] = {}

    async def env_files() -> list[Check]:
        more, located = await _env_files(here, len(ctx.hosts))
        found.update(located)
        return more

    rows += await _guarded("env file checks", env_files())
    rows += await _guarded("tools on PATH", _tools(here))
    rows += await _guarded("sudo allows the service commands", _service_sudo(here))
    known = [
        h for h in reached if h in found and {"log_dir", "backup_dir"} <= set(_values(here, h))
    ]
    if known:
        ready = _narrowed(here, known)
        rows += await _guarded("sudo checks", _sudo(ready, SUDO_USES))
        rows += await _guarded("log and backup dirs there", _dirs(ready))
        rows += await _guarded("room for the log archive", _room(ready))
        rows += await _guarded("backups", _backups(ready))
    rows += await _guarded("leader", _leader(ctx))
    rows.append(await _whole_preflight(ctx))
    return rows


async def _guarded(name: str, gate: Awaitable[list[Check]]) -> list[Check]:
    try:
        return await gate
    except Exception as exc:  # one row, never a traceback
        return [Check(name, CLUSTER, False, f"cannot run: {type(exc).__name__}: {exc}")]


def _values(ctx: StepContext, host: str) -> dict[str, str]:
    try:
        return host_values(ctx.cluster, ctx.sched(host), ctx.facts)
    except Exception:
        return {}


def to_json(cluster: str, rows: list[Check]) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "ok": all(c.ok for c in rows),
        "checks": [asdict(c) for c in rows],
    }


def to_markdown(cluster: str, rows: list[Check]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    failed = sum(not c.ok for c in rows)
    head = f"# Restore readiness: {cluster}\n\n{len(rows) - failed} pass, {failed} fail.\n\n"
    table = "| result | check | host | cause |\n|---|---|---|---|\n" + "".join(
        f"| {'PASS' if c.ok else 'FAIL'} | {cell(c.name)} | {cell(c.host)} | "
        f"{cell(c.cause if not c.ok else '')} |\n"
        for c in rows
    )
    return head + table


def to_html(cluster: str, rows: list[Check]) -> str:
    from html import escape

    failed = sum(not c.ok for c in rows)
    body = "".join(
        f'<tr class="{"pass" if c.ok else "fail"}"><td>{"PASS" if c.ok else "FAIL"}</td>'
        f"<td>{escape(c.name)}</td><td>{escape(c.host)}</td>"
        f"<td>{escape(c.cause if not c.ok else '')}</td></tr>"
        for c in rows
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>Restore readiness: {escape(cluster)}</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        ".pass td:first-child{color:#176f2c}.fail td:first-child{color:#b00020;font-weight:bold}"
        "</style></head><body>"
        f"<h1>Restore readiness: {escape(cluster)}</h1>"
        f"<p>{len(rows) - failed} pass, {failed} fail.</p>"
        "<table><tr><th>result</th><th>check</th><th>host</th><th>cause</th></tr>"
        f"{body}</table></body></html>\n"
    )


__all__ = ["CLUSTER", "Check", "make_context", "run_checks", "to_html", "to_json", "to_markdown"]
