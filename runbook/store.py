"""Restore state in Redis, and only there.

Every transition is one Lua script: it checks the step's current status, writes the new
one and appends the event to the restore's stream, atomically, in one round trip. So 50
approvals of one step arriving at once move it once, and only the caller whose script
succeeded runs the step.

Keys (prefix `ar:`, see README "State in Redis"):

    ar:restore:<rid>          HASH  meta (JSON), status, current, step:<sid> (JSON),
                                     data:<name> (JSON facts), seq, chain (last event hash)
    ar:restore:<rid>:events   STREAM one entry per transition: e (event JSON), h (hash)
    ar:restore:<rid>:output   HASH  <sid>:<attempt>:<host> -> capped, redacted output (JSON)
    ar:lock:cluster:<name>    STRING the restore id holding the cluster (expires when idle)
    ar:restores               ZSET  restore ids by start time

Times are the Redis server's (`TIME`), so that bot processes on several machines agree
on leases. Each event carries the SHA-256 of the one before it (a hash chain).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runbook.errors import StoreScriptMissing, StoreUnavailable
from runbook.ports import HostResult
from runbook.state import RestoreStatus, StepStatus

log = logging.getLogger(__name__)

PREFIX = "ar:"
LOCK_TTL_MS = 24 * 3600 * 1000  # a restore idle for a day frees its cluster
RESTORES = PREFIX + "restores"
RETRY_PAUSE_MAX = 2.0  # the longest pause between two tries while the store is away


def restore_key(rid: str) -> str:
    return f"{PREFIX}restore:{rid}"


def events_key(rid: str) -> str:
    return f"{PREFIX}restore:{rid}:events"


def output_key(rid: str) -> str:
    return f"{PREFIX}restore:{rid}:output"


def result_key(sid: str, attempt: int, host: str) -> str:
    """The field of one host's result of one attempt of a step, in `output_key(rid)`:
    the one place this shape is known (`parse_result_key` reads it back)."""
    return f"{sid}:{attempt}:{host}"


def parse_result_key(key: str) -> tuple[str, int, str]:
    """(step id, attempt, host) of a `result_key`; ValueError when it is not one."""
    sid, attempt, host = key.split(":", 2)
    return sid, int(attempt), host


def lock_key(cluster: str) -> str:
    return f"{PREFIX}lock:cluster:{cluster}"


# A pure-Lua SHA-256 (FIPS 180-4) for the hash chain: about 2 ms per KB of event on the
# CI machine (a typical event of a few hundred bytes: well under a millisecond), so a
# restore's few hundred events cost the server well under a second in all.
SHA256_LUA = r"""
local SHA256_K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
local function sha256hex(msg)
  local band, bxor, bnot, rshift, lshift, ror, tobit =
    bit.band, bit.bxor, bit.bnot, bit.rshift, bit.lshift, bit.ror, bit.tobit
  local len = #msg
  local bits = len * 8
  local hi, lo = math.floor(bits / 4294967296), bits % 4294967296
  msg = msg .. '\128' .. string.rep('\0', (55 - len) % 64)
    .. string.char(band(rshift(hi, 24), 255), band(rshift(hi, 16), 255), band(rshift(hi, 8), 255), band(hi, 255),
                   band(rshift(lo, 24), 255), band(rshift(lo, 16), 255), band(rshift(lo, 8), 255), band(lo, 255))
  local h0, h1, h2, h3 = 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
  local h4, h5, h6, h7 = 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      local b1, b2, b3, b4 = string.byte(msg, chunk + i * 4, chunk + i * 4 + 3)
      w[i] = tobit(b1 * 16777216 + b2 * 65536 + b3 * 256 + b4)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for i = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + S1 + ch + SHA256_K[i + 1] + w[i])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      local t2 = tobit(S0 + maj)
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    h0, h1, h2, h3 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d)
    h4, h5, h6, h7 = tobit(h4 + e), tobit(h5 + f), tobit(h6 + g), tobit(h7 + h)
  end
  return bit.tohex(h0, 8) .. bit.tohex(h1, 8) .. bit.tohex(h2, 8) .. bit.tohex(h3, 8)
    .. bit.tohex(h4, 8) .. bit.tohex(h5, 8) .. bit.tohex(h6, 8) .. bit.tohex(h7, 8)
end
"""

# Shared by the scripts below: the server's clock, and appending an event to the stream
# chained to the one before it: hash = sha256(previous hash .. body), where the first
# event's "previous hash" is the restore's key (ar:restore:<rid>), binding the chain to
# its restore. SHA-256 in Lua (FIPS 180-4 over LuaBitOp's `bit`, which Redis and Valkey
# embed): Redis offers only `redis.sha1hex`, and hashing in the script keeps reading the
# last hash, appending and moving `chain` one atomic step. Chains before this used
# redis.sha1hex(prev .. body) from an empty prev (runbook.transcript reads both).
PRELUDE = (
    SHA256_LUA
    + r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function append(e, now)
  e.at = now
  e.seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  e.prev = redis.call('HGET', KEYS[1], 'chain') or ''
  local body = cjson.encode(e)
  local h = sha256hex((e.prev ~= '' and e.prev or KEYS[1]) .. body)
  redis.call('XADD', KEYS[2], '*', 'e', body, 'h', h)
  redis.call('HSET', KEYS[1], 'chain', h)
end
"""
)

# KEYS: restore hash, events stream, cluster lock
# ARGV: sid, allowed statuses (comma list), step patch JSON, restore patch JSON, event JSON,
#       lease mode ("" | "take:<owner>:<ms>" | "own:<owner>" | "expired"), rid
TRANSITION = (
    PRELUDE
    + r"""
local sid, allowed, spatch, rpatch, ev, lease, rid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now = now_ms()
local raw = redis.call('HGET', KEYS[1], 'step:' .. sid)
if not raw then return {0, 'unknown step'} end
local st = cjson.decode(raw)
local ok = false
for s in string.gmatch(allowed, '[^,]+') do if st.status == s then ok = true end end
if not ok then return {0, raw} end
if string.sub(lease, 1, 4) == 'own:' then
  if st.lease_owner ~= string.sub(lease, 5) then return {0, raw} end
elseif lease == 'expired' then
  if (st.lease_until or 0) > now then return {0, raw} end
end
for k, v in pairs(cjson.decode(spatch)) do st[k] = v end
if string.sub(lease, 1, 5) == 'take:' then
  local owner, ttl = string.match(lease, '^take:(.*):(%d+)$')
  st.lease_owner = owner
  st.lease_until = now + tonumber(ttl)
end
st.updated_at = now
local rp = cjson.decode(rpatch)
for k, v in pairs(rp) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'step:' .. sid, cjson.encode(st))
local e = cjson.decode(ev)
e.step = sid
append(e, now)
if redis.call('GET', KEYS[3]) == rid then redis.call('PEXPIRE', KEYS[3], ARGV[8]) end
return {1, cjson.encode(st)}
"""
)

# Renew a running step's lease, only for its owner. ARGV: sid, owner, ttl ms
RENEW = (
    PRELUDE
    + r"""
local now = now_ms()
local raw = redis.call('HGET', KEYS[1], 'step:' .. ARGV[1])
if not raw then return 0 end
local st = cjson.decode(raw)
if st.status ~= '"""
    + StepStatus.RUNNING
    + r"""' or st.lease_owner ~= ARGV[2] then return 0 end
st.lease_until = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'step:' .. ARGV[1], cjson.encode(st))
return 1
"""
)

# A restore-level event (started, aborted, finished...). KEYS: restore, events, lock.
# ARGV: restore patch JSON, event JSON, allowed restore statuses, rid, lock ttl, release(0/1)
RESTORE_EVENT = (
    PRELUDE
    + r"""
local now = now_ms()
local status = redis.call('HGET', KEYS[1], 'status')
local ok = false
for s in string.gmatch(ARGV[3], '[^,]+') do if status == s then ok = true end end
if not ok then return {0, status or ''} end
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
append(cjson.decode(ARGV[2]), now)
if redis.call('GET', KEYS[3]) == ARGV[4] then
  if ARGV[6] == '1' then redis.call('DEL', KEYS[3]) else redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
end
return {1, status}
"""
)

# Create a restore and take its cluster's lock, or name the restore holding it.
# KEYS: restore, events, lock, restores zset. ARGV: rid, meta JSON, steps JSON (sid->state), event JSON, ttl
CREATE = (
    PRELUDE
    + r"""
local holder = redis.call('GET', KEYS[3])
if holder then return {0, holder} end
local now = now_ms()
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5])
local meta = cjson.decode(ARGV[2])
meta.started_at = now
redis.call('HSET', KEYS[1], 'meta', cjson.encode(meta), 'status', '"""
    + RestoreStatus.RUNNING
    + r"""', 'current', '', 'seq', 0, 'chain', '')
for sid, st in pairs(cjson.decode(ARGV[3])) do redis.call('HSET', KEYS[1], 'step:' .. sid, cjson.encode(st)) end
redis.call('ZADD', KEYS[4], now, ARGV[1])
append(cjson.decode(ARGV[4]), now)
return {1, ARGV[1]}
"""
)


def _unreachable() -> tuple[type[Exception], ...]:
    """redis-py's errors for a server that cannot be reached (imported when first needed:
    the command line's other commands, the sandbox's among them, never load redis)."""
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError)


def _no_script() -> type[Exception]:
    from redis.exceptions import NoScriptError

    return NoScriptError


@dataclass
class Transition:
    ok: bool
    step: dict[str, Any]
    error: str = ""


@dataclass
class RestoreRecord:
    rid: str
    meta: dict[str, Any]
    status: str
    current: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def output_digest(output: dict[str, Any]) -> str:
    """SHA-256 of one host's stored result (exit status, duration, error, stdout, stderr):
    the `host_result` event carries it, so the chain vouches for the output too."""
    fields = {k: output.get(k) for k in ("exit_status", "duration", "error", "stdout", "stderr")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Store:
    """Restore state over a `redis.asyncio.Redis` client (decode_responses on or off).

    The client comes from outside (bot/): this module opens no connection itself.
    """

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._sha: dict[str, str] = {}
        # How long a transition waits for an unreachable server before giving up.
        self.outage_wait = 120.0
        self.down_since: float | None = None
        # A restore's cluster never changes: remembered to save a round trip per transition.
        self._clusters: dict[str, str] = {}

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._retry(lambda: self._eval(script, keys, args))

    async def _retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """While the server cannot be reached, wait and try again (up to `outage_wait`),
        so that what a step learnt and the outputs of commands that ran are stored once
        it is back rather than lost; one log line per outage."""
        deadline = time.monotonic() + self.outage_wait
        delay = 0.2
        while True:
            try:
                result = await call()
            except _unreachable() as exc:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"the store is unreachable: {exc}") from None
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("the store is unreachable (%s); retrying until it is back", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_PAUSE_MAX)
                continue
            if self.down_since is not None:
                log.warning("the store is back after %.1fs", time.monotonic() - self.down_since)
                self.down_since = None
            return result

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of the script, loaded on first use. A server that lost it (restarted,
        SCRIPT FLUSH) answers redis-py's NoScriptError: it is loaded again, once; a
        second NOSCRIPT right after the reload is StoreScriptMissing, not a loop."""
        for reload in (False, True):
            sha = self._sha.get(script)
            if sha is None:
                sha = _s(await self.redis.script_load(script))
                self._sha[script] = sha
            try:
                return await self.redis.evalsha(sha, len(keys), *keys, *args)
            except _no_script():
                self._sha.pop(script, None)
                if reload:
                    raise StoreScriptMissing(
                        f"the store lost script {sha[:12]} again right after loading it"
                    ) from None
        raise AssertionError("unreachable")

    async def reachable(self, timeout: float = 1.0) -> bool:
        """A quick PING, for the click path and /healthz."""
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout))
        except Exception:
            return False

    async def create(
        self,
        rid: str,
        cluster: str,
        meta: dict[str, Any],
        steps: dict[str, dict[str, Any]],
        event: dict[str, Any],
    ) -> tuple[bool, str]:
        """Create the restore and lock its cluster. (False, holder) when the cluster is busy."""
        res = await self._run(
            CREATE,
            [restore_key(rid), events_key(rid), lock_key(cluster), RESTORES],
            [rid, json.dumps(meta), json.dumps(steps), json.dumps(event), LOCK_TTL_MS],
        )
        return bool(int(res[0])), _s(res[1])

    async def transition(
        self,
        rid: str,
        sid: str,
        allowed: tuple[str, ...],
        patch: dict[str, Any],
        event: dict[str, Any],
        *,
        restore_patch: dict[str, str] | None = None,
        lease: str = "",
    ) -> Transition:
        cluster = await self.cluster_of(rid)
        res = await self._run(
            TRANSITION,
            [restore_key(rid), events_key(rid), lock_key(cluster)],
            [
                sid,
                ",".join(allowed),
                json.dumps(patch),
                json.dumps(restore_patch or {}),
                json.dumps(event),
                lease,
                rid,
                LOCK_TTL_MS,
            ],
        )
        ok, body = bool(int(res[0])), _s(res[1])
        if body == "unknown step":
            return Transition(False, {}, "unknown step")
        return Transition(ok, json.loads(body))

    async def renew(self, rid: str, sid: str, owner: str, ttl_ms: int) -> bool:
        res = await self._run(RENEW, [restore_key(rid)], [sid, owner, ttl_ms])
        return bool(int(res))

    async def restore_event(
        self,
        rid: str,
        patch: dict[str, str],
        event: dict[str, Any],
        allowed: tuple[str, ...],
        *,
        release: bool = False,
    ) -> tuple[bool, str]:
        cluster = await self.cluster_of(rid)
        res = await self._run(
            RESTORE_EVENT,
            [restore_key(rid), events_key(rid), lock_key(cluster)],
            [
                json.dumps(patch),
                json.dumps(event),
                ",".join(allowed),
                rid,
                LOCK_TTL_MS,
                "1" if release else "0",
            ],
        )
        return bool(int(res[0])), _s(res[1])

    async def cluster_of(self, rid: str) -> str:
        if rid in self._clusters:
            return self._clusters[rid]
        raw = await self.redis.hget(restore_key(rid), "meta")
        if raw is None:
            raise KeyError(f"no restore {rid}")
        cluster: str = json.loads(raw)["cluster"]
        self._clusters[rid] = cluster
        return cluster

    async def load(self, rid: str) -> RestoreRecord | None:
        raw = await self.redis.hgetall(restore_key(rid))
        if not raw:
            return None
        h = {_s(k): _s(v) for k, v in raw.items()}
        rec = RestoreRecord(rid, json.loads(h["meta"]), h["status"], h.get("current", ""))
        for k, v in h.items():
            if k.startswith("step:"):
                rec.steps[k[5:]] = json.loads(v)
            elif k.startswith("data:"):
                rec.data[k[5:]] = json.loads(v)
        return rec

    async def set_data(self, rid: str, **values: Any) -> None:
        """Facts a restore learnt; None removes one (originals, once the restore ended)."""
        keep = {f"data:{k}": json.dumps(v) for k, v in values.items() if v is not None}
        drop = [f"data:{k}" for k, v in values.items() if v is None]
        if keep:
            await self._retry(lambda: self.redis.hset(restore_key(rid), mapping=keep))
        if drop:
            await self._retry(lambda: self.redis.hdel(restore_key(rid), *drop))

    async def set_meta(self, rid: str, meta: dict[str, Any]) -> None:
        await self.redis.hset(restore_key(rid), "meta", json.dumps(meta))

    async def save_output(self, rid: str, key: str, value: dict[str, Any]) -> None:
        body = json.dumps(value)
        await self._retry(lambda: self.redis.hset(output_key(rid), key, body))

    async def save_result(
        self, rid: str, sid: str, attempt: int, result: HostResult, **extra: Any
    ) -> dict[str, Any]:
        """One host's result of one attempt (already capped and redacted by the caller),
        with `extra` fields such as `truncated`; returns what was stored."""
        value = result.to_dict() | extra
        await self.save_output(rid, result_key(sid, attempt, result.host), value)
        return value

    async def step_outputs(
        self, rid: str, sid: str, attempt: int, hosts: list[str]
    ) -> dict[str, dict[str, Any]]:
        """One attempt of one step, per host: only those fields, not the whole hash."""
        keys = [result_key(sid, attempt, h) for h in hosts]
        values = await self.redis.hmget(output_key(rid), keys)
        return {h: json.loads(v) for h, v in zip(hosts, values, strict=True) if v is not None}

    async def step_results(
        self, rid: str, sid: str, attempt: int, hosts: list[str]
    ) -> dict[str, HostResult]:
        """`step_outputs` as results, for the cards."""
        stored = await self.step_outputs(rid, sid, attempt, hosts)
        return {h: HostResult.from_dict(h, o) for h, o in stored.items()}

    async def outputs(self, rid: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(output_key(rid))
        return {_s(k): json.loads(v) for k, v in raw.items()}

    async def events(self, rid: str) -> list[dict[str, Any]]:
        out = []
        for _id, fields in await self.redis.xrange(events_key(rid)):
            f = {_s(k): _s(v) for k, v in fields.items()}
            e: dict[str, Any] = json.loads(f["e"])
            e["hash"] = f["h"]
            e["raw"] = f["e"]  # the exact text the hash covers
            out.append(e)
        return out

    async def expire(self, rid: str, seconds: int) -> None:
        """Retention: a finished restore's keys go after `seconds`."""
        for key in (restore_key(rid), events_key(rid), output_key(rid), f"{PREFIX}slack:{rid}"):
            await self.redis.expire(key, seconds)

    async def holder(self, cluster: str) -> str | None:
        raw = await self.redis.get(lock_key(cluster))
        return _s(raw) if raw is not None else None

    async def restore_ids(self, limit: int = 50) -> list[str]:
        return [_s(x) for x in await self.redis.zrevrange(RESTORES, 0, limit - 1)]
