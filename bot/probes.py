"""Reading the schedulers' `/vars` over HTTP (httpx), all hosts at once, and libprocess's
`/metrics/snapshot` (the replicated log's `log/recovered`) beside it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import httpx

from runbook.errors import ProbeError


def parse_vars(text: str) -> dict[str, str]:
    """Aurora's /vars text: one `name value` per line."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name:
            out[name] = value.strip()
    return out


def parse_metrics(text: str) -> dict[str, float] | str:
    """A metrics snapshot: a JSON object of numbers; anything else, one line saying so."""
    try:
        doc = json.loads(text)
    except ValueError:
        return "the metrics snapshot is not JSON"
    if not isinstance(doc, dict):
        return "the metrics snapshot is not a JSON object"
    return {
        k: float(v)
        for k, v in doc.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


class HttpVarsProbe:
    """Every host's /vars in parallel; a dead or hanging host costs only its own timeout.

    httpx's exceptions become `runbook.errors.ProbeError` in `read`, and nowhere else;
    `vars` turns each into the host's one-line string, as the engine's port expects."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(trust_env=False)

    async def read(self, address: str, port: int, timeout: float) -> dict[str, str]:
        """One scheduler's /vars; raises ProbeError with one line when it cannot."""
        try:
            r = await asyncio.wait_for(
                self._client.get(f"http://{address}:{port}/vars", timeout=timeout), timeout
            )
        except (TimeoutError, httpx.TimeoutException):
            raise ProbeError(f"no answer within {timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ProbeError(f"unreachable: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise ProbeError(f"HTTP {r.status_code}")
        return parse_vars(r.text)

    async def vars(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> dict[str, dict[str, str] | str]:
        async def one(address: str, port: int) -> dict[str, str] | str:
            try:
                return await self.read(address, port, timeout)
            except ProbeError as exc:
                return exc.reason

        hosts = list(endpoints)
        results = await asyncio.gather(*(one(*endpoints[h]) for h in hosts))
        return dict(zip(hosts, results, strict=True))

    async def metrics(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> dict[str, dict[str, float] | str]:
        """Each host's libprocess metrics, `GET http://ADDRESS:LIBPROCESS_PORT/metrics/snapshot`
        (a flat JSON object of numbers: apache/mesos `3rdparty/libprocess/src/metrics/`), or
        a one-line error. The replicated log's gauges are named `log/...`, `log/recovered`
        among them (Aurora's `docs/operations/upgrades.md`)."""

        async def one(address: str, port: int) -> dict[str, float] | str:
            host = f"[{address}]" if ":" in address else address
            try:
                r = await asyncio.wait_for(
                    self._client.get(f"http://{host}:{port}/metrics/snapshot", timeout=timeout),
                    timeout,
                )
            except (TimeoutError, httpx.TimeoutException):
                return f"no answer within {timeout:g}s"
            except httpx.HTTPError as exc:
                return f"unreachable: {type(exc).__name__}"
            if r.status_code != 200:
                return f"HTTP {r.status_code}"
            return parse_metrics(r.text)

        hosts = list(endpoints)
        results = await asyncio.gather(*(one(*endpoints[h]) for h in hosts))
        return dict(zip(hosts, results, strict=True))

    async def close(self) -> None:
        await self._client.aclose()
