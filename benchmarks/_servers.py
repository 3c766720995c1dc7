"""Helper processes for the ack benchmarks (benchmarks/_ack.py), so that neither the Slack double nor
the bare app shares an event loop with the client that measures.

    python benchmarks/_servers.py double 0
    python benchmarks/_servers.py bare PORT API_URL SECRET
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request  # noqa: E402
from slack_bolt.async_app import AsyncApp  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402


async def double(port: int) -> None:
    from tests.slack_double import SlackDouble

    d = SlackDouble()
    url = await d.start()  # a free port: the URL is printed for the caller
    print(url, flush=True)
    await asyncio.Event().wait()


async def bare(port: int, api: str, secret: str) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-test-token", base_url=api), signing_secret=secret
    )

    @app.action(re.compile(".*"))
    async def only_ack(ack: object) -> None:
        await ack()  # type: ignore[operator]

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    application = web.Application()
    application.router.add_post("/slack/events", events)
    runner = web.AppRunner(application)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "double":
        asyncio.run(double(int(sys.argv[2])))
    else:
        asyncio.run(bare(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
