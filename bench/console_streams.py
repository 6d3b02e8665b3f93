"""Console event streams held open by one process, for the console part of the bench.

``python -m bench.console_streams --host H --port P --cookie C --paths-file F --out O``
opens one stream per line of F (a path with its query), prints ``ready`` once
every stream has had its first event, and reads until SIGTERM; then it
writes what each stream received to O as JSON and exits. It runs in a process
of its own so that reading the streams takes no CPU from the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from dataclasses import asdict, dataclass


@dataclass
class Received:
    path: str
    status: int = 0
    patches: int = 0
    heartbeats: int = 0
    bytes: int = 0
    first_event_s: float = 0.0
    error: str = ""


async def follow(host: str, port: int, cookie: str, got: Received, ready: asyncio.Event) -> None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            (
                f"GET {got.path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        got.status = int(head.split(b" ", 2)[1])
        partial = b""
        while chunk := await reader.read(65536):
            got.bytes += len(chunk)
            *lines, partial = (partial + chunk).split(b"\n")
            got.patches += lines.count(b"event: patch")
            got.heartbeats += lines.count(b"event: heartbeat")
            if (got.patches or got.heartbeats) and not got.first_event_s:
                got.first_event_s = round(time.monotonic() - started, 3)
                ready.set()
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        got.error = str(exc)
        ready.set()


async def main(args: argparse.Namespace) -> None:
    paths = [line.strip() for line in open(args.paths_file) if line.strip()]  # noqa: SIM115
    received = [Received(path) for path in paths]
    readies = [asyncio.Event() for _ in paths]
    tasks = [
        asyncio.create_task(follow(args.host, args.port, args.cookie, got, ready))
        for got, ready in zip(received, readies, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(args.out, "w") as out:
        json.dump([asdict(r) for r in received], out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cookie", required=True)
    parser.add_argument("--paths-file", required=True)
    parser.add_argument("--out", required=True)
    asyncio.run(main(parser.parse_args()))
