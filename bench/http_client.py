"""What one write-back's HTTP call costs the sending process, through requests and urllib3.

::

    .venv/bin/python bench/http_client.py [--calls 3000]

The fake help desks (bench/fake_helpdesk.py, a process of their own on loopback) answer a
Zendesk ``PUT /api/v2/tickets/<id>``; this process sends the same internal note (about 300
characters, an Authorization header, keep-alive) ``--calls`` times each way and prints the CPU
this process spent per call (``time.process_time``, so the desk's work is left out):

* ``requests.Session.request``, as the desks' clients send (adapters/base.py);
* urllib3's ``PoolManager`` alone (the transport under requests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_helpdesk  # noqa: E402

BODY = {"ticket": {"comment": {"body": "x" * 300, "public": False}}}
HEADERS = {"Authorization": "Basic Ym90QHNob3AuZXhhbXBsZTp0b2tlbg=="}


def _per_call(send: Callable[[], int], calls: int) -> float:
    """Milliseconds of this process's CPU per call, after a few warm-up calls."""
    for _ in range(20):
        assert send() == 200
    started = time.process_time()
    for _ in range(calls):
        assert send() == 200
    return 1000 * (time.process_time() - started) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)

    session = requests.Session()
    session.trust_env = False
    pool = urllib3.PoolManager()
    raw_headers = {**HEADERS, "Content-Type": "application/json"}

    with fake_helpdesk.running_desks() as desks:
        url = f"{desks.url}/zendesk/api/v2/tickets/1"

        def through_session() -> int:
            answer = session.request("PUT", url, json=BODY, headers=HEADERS, timeout=(5, 30))
            return answer.status_code

        def through_urllib3() -> int:
            answer = pool.request(
                "PUT",
                url,
                body=json.dumps(BODY).encode(),
                headers=raw_headers,
                timeout=urllib3.Timeout(connect=5, read=30),
            )
            return answer.status

        figures = {
            "requests.Session.request": _per_call(through_session, args.calls),
            "urllib3.PoolManager": _per_call(through_urllib3, args.calls),
        }
    print("HTTP client cost per call (bench/http_client.py)")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, requests {requests.__version__}, "
        f"urllib3 {urllib3.__version__}"
    )
    print(f"{args.calls} PUTs each way to the fake desk in another process; this process's CPU")
    for name, ms in figures.items():
        print(f"  {name:26} {ms:.3f} ms of CPU per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
