"""Run the live process: ``python -m config.live`` (``make live``, the Procfile, compose).

uvicorn serves ``config.asgi:application`` on ``HOST``:``LIVE_PORT`` with its
fast loop and parser (uvloop, httptools). One process holds thousands of
waiting requests; ``LIVE_WORKERS`` adds processes (each with its own bell and
connection pool). ``--timeout-graceful-shutdown``: long polls and event
streams would otherwise hold a restart for as long as they last.
"""

from __future__ import annotations

import os

import uvicorn


def main() -> None:
    os.environ["PARLEY_PROCESS"] = "live"  # the worker processes inherit it
    port = int(os.environ.get("LIVE_PORT") or int(os.environ.get("PORT", "8000")) + 1)
    uvicorn.run(
        "config.asgi:application",
        host=os.environ.get("HOST", "0.0.0.0"),  # noqa: S104
        port=port,
        workers=int(os.environ.get("LIVE_WORKERS", "1")),
        # Django speaks no ASGI lifespan; without this uvicorn logs that at start.
        lifespan="off",
        timeout_graceful_shutdown=int(os.environ.get("LIVE_GRACEFUL_SECONDS", "5")),
        access_log=bool(os.environ.get("LIVE_ACCESS_LOG")),
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_config=None,  # Django's logging (parley.core.logging) formats every line
    )


if __name__ == "__main__":
    main()
