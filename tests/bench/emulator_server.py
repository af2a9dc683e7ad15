"""The operator tests' API emulator as a separate process, so the benchmark's RSS is the
operator's alone. Prints `URL` on its first stdout line; `GET /_bench/counts` says how
many requests and writes (POST/PATCH/PUT/DELETE) it has served so far."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import kmock

from tests.operator.emulator import Emulator


async def serve() -> None:
    async with Emulator(bookmark_every=30.0) as emu, kmock.Server(emu) as server:

        def counts(_: Any) -> dict[str, int]:
            return {"writes": len(emu.writes()), "requests": len(emu.requests_log)}

        emu["get /_bench/counts"] << counts
        print(str(server.url).rstrip("/"), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
