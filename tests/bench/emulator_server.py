"""The operator tests' API emulator as a separate process, so the benchmark's RSS is the
operator's alone. Prints `URL` on its first stdout line; `GET /_bench/writes` counts the
write requests served so far."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import kmock

from tests.operator.emulator import Emulator


async def serve() -> None:
    async with Emulator() as emu, kmock.Server(emu) as server:

        def writes(_: Any) -> dict[str, int]:
            return {"writes": len(emu.writes())}

        emu["get /_bench/writes"] << writes
        print(str(server.url).rstrip("/"), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
