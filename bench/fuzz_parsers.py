"""Coverage-guided fuzzing of every registered adapter's ``verify``, ``delivery_key`` and
``parse`` with atheris (libFuzzer), a fixed time per adapter. Not part of CI.

::

    .venv/bin/pip install -e '.[fuzz]'          # atheris>=2.3,<4
    .venv/bin/python bench/fuzz_parsers.py [--seconds 60] [--adapters zendesk,rt]
        [--work DIR] [--max-len 65536]

For each adapter of the registry in turn (``adapters.ADAPTERS``: a new adapter is fuzzed
without a change here), a child process runs libFuzzer for ``--seconds`` over the adapter's
modules, instrumented for coverage (every module under ``adapters``). One input is one
delivery: header lines (``Name: value``), an empty line, then the raw body; an input without
an empty line is all body. A header ``X-Fuzz-Sign`` makes the harness sign the body the way
the desk does (tests/adapters/<key>/support.py), so that the code behind a good signature
(the timestamp window) is reached too; ``parse`` is called whatever ``verify`` says.

Each input goes through ``tests.adapters.hostile.handle``: the calls must end in the outcomes
the adapter contract documents (a :class:`SignatureError`; a key; events, an
:class:`UnsupportedEventError` or an :class:`AnomalousPayloadError`), and whatever comes out
must be storable (JSON, no NUL, no lone surrogate, times with a UTC equivalent). Anything
else is a crash: libFuzzer stops that adapter's run and writes the input to
``<work>/<key>/crash-<sha1>``, which the summary names.

The seed corpus is each desk's real payloads (``tests/fixtures/<key>/``), signed and unsigned,
with their headers; a libFuzzer dictionary holds their keys and short string values.

Prints, per adapter: executions, executions per second, coverage (libFuzzer's ``cov``: code
edges reached; ``ft``: features), the corpus it grew to, and any crash. ``<work>/summary.json``
keeps the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test helpers (tests/adapters/hostile.py)

SIGN_HEADER = "x-fuzz-sign"
MAX_HEADERS = 32


# --------------------------------------------------------------------------------------------
# The child: one adapter under libFuzzer


def split_input(data: bytes) -> tuple[dict[str, str], bytes, bool]:
    """(headers, body, sign?) of one fuzz input."""
    head, separator, body = data.partition(b"\n\n")
    if not separator:
        return {}, data, False
    headers: dict[str, str] = {}
    sign = False
    for line in head.split(b"\n")[:MAX_HEADERS]:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            continue
        if name.strip().lower() == SIGN_HEADER:
            sign = True
            continue
        # What a WSGI server hands over: latin-1 text, no line breaks.
        headers[name.strip()] = value.strip()
    return headers, body, sign


def run_child(key: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["adapters"]):
        import adapters  # noqa: F401  (instrumented: every adapter package it registers)

    from tests.adapters.hostile import handle, registered_desks

    desk = next(d for d in registered_desks() if d.key == key)
    adapter = desk.adapter()

    def one_input(data: bytes) -> None:
        headers, body, sign = split_input(data)
        if sign:
            headers = desk.sign(body, headers)
        handle(desk, adapter, headers, body, signed=sign)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


# --------------------------------------------------------------------------------------------
# The driver


def _escape(token: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}" for b in token)


def write_seeds(key: str, corpus: Path, dictionary: Path) -> int:
    """The desk's fixtures as seed inputs (signed and not), and a libFuzzer dictionary of
    their keys and short values; the number of seeds."""
    from tests.adapters.hostile import registered_desks

    desk = next(d for d in registered_desks() if d.key == key)
    corpus.mkdir(parents=True, exist_ok=True)
    tokens: set[bytes] = {b"\\u0000", b"\\ud800", b"1e999", b"-0", b"null", b"true", b"[]", b"{}"}
    count = 0
    for seed in desk.seeds:
        head = "".join(f"{name}: {value}\n" for name, value in seed.headers.items())
        for signed in (True, False):
            prefix = (f"X-Fuzz-Sign: 1\n{head}" if signed else head).encode("latin-1")
            (corpus / f"{seed.name}.{'signed' if signed else 'plain'}").write_bytes(
                prefix + b"\n" + seed.body if prefix else b"\n\n" + seed.body
            )
            count += 1
        for name, value in seed.headers.items():
            tokens.update((name.encode("latin-1"), value.encode("latin-1")[:64]))
        stack: list[Any] = [seed.data()]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for k, v in node.items():
                    tokens.add(json.dumps(k).encode())
                    stack.append(v)
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str) and len(node) <= 40:
                tokens.add(json.dumps(node).encode())
    tokens.add(b"X-Fuzz-Sign: 1\n")
    lines = [f'"{_escape(t)}"' for t in sorted(tokens) if 0 < len(t) <= 64]
    dictionary.write_text("\n".join(lines) + "\n", encoding="ascii")
    return count


_PROGRESS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")


def fuzz_one(key: str, seconds: int, work: Path, max_len: int) -> dict[str, Any]:
    folder = work / key
    corpus = folder / "corpus"
    dictionary = folder / "tokens.dict"
    seeds = write_seeds(key, corpus, dictionary)
    args = [
        str(corpus),
        f"-max_total_time={seconds}",
        f"-max_len={max_len}",
        f"-dict={dictionary}",
        f"-artifact_prefix={folder}/",
        "-timeout=20",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        "-print_pcs=0",
    ]
    command = [sys.executable, str(Path(__file__).resolve()), "--child", key, "--", *args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", cwd=ROOT)
    elapsed = time.monotonic() - started
    log = done.stdout + done.stderr
    (folder / "fuzz.log").write_text(log, encoding="utf-8")
    progress = _PROGRESS.findall(log)
    stats = {name: int(value) for name, value in _STAT.findall(log)}
    crashes = sorted(str(p) for p in folder.glob("crash-*")) + sorted(
        str(p) for p in folder.glob("timeout-*")
    )
    result: dict[str, Any] = {
        "adapter": key,
        "seconds": round(elapsed, 1),
        "exit_code": done.returncode,
        "seeds": seeds,
        "executions": stats.get(
            "number_of_executed_units", int(progress[-1][0]) if progress else 0
        ),
        "exec_per_second": stats.get("average_exec_per_sec", 0),
        "coverage": int(progress[-1][1]) if progress else 0,
        "features": int(progress[-1][2]) if progress else 0,
        "corpus": int(progress[-1][3]) if progress else 0,
        "new_units": stats.get("new_units_added", 0),
        "peak_rss_mb": stats.get("peak_rss_mb", 0),
        "crashes": crashes,
    }
    if done.returncode != 0 or crashes:
        marker = log.find("Uncaught Python exception")
        excerpt = log[marker : marker + 3000] if marker >= 0 else log[-3000:]
        result["crash_log"] = excerpt
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per adapter")
    parser.add_argument("--adapters", default="", help="comma-separated keys (default: all)")
    parser.add_argument("--work", type=Path, default=None, help="corpus and crash folder")
    parser.add_argument("--max-len", type=int, default=65536, help="longest input, bytes")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    options, rest = parser.parse_known_args()
    if options.child:
        run_child(options.child, [a for a in rest if a != "--"])
        return 0

    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    from adapters import ADAPTERS

    keys = [k for k in options.adapters.split(",") if k] or sorted(ADAPTERS)
    unknown = sorted(set(keys) - set(ADAPTERS))
    if unknown:
        print(f"unknown adapters: {', '.join(unknown)}", file=sys.stderr)
        return 2
    work = options.work or Path(tempfile.mkdtemp(prefix="care-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {options.seconds} s per adapter, work {work}"
    )
    print(f"{'adapter':<10} {'execs':>9} {'exec/s':>7} {'cov':>6} {'ft':>7} {'corpus':>7}  crashes")
    results = []
    for key in keys:
        result = fuzz_one(key, options.seconds, work, options.max_len)
        results.append(result)
        outcome = len(result["crashes"]) or (
            "none" if result["exit_code"] == 0 else f"exit {result['exit_code']}"
        )
        print(
            f"{key:<10} {result['executions']:>9,} {result['exec_per_second']:>7,} "
            f"{result['coverage']:>6,} {result['features']:>7,} {result['corpus']:>7,}  "
            f"{outcome}",
            flush=True,
        )
        for crash in result["crashes"]:
            print(f"  crash input: {crash}")
        if "crash_log" in result:
            print("  " + result["crash_log"].replace("\n", "\n  ")[:3000])
    (work / "summary.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    failed = any(r["crashes"] or r["exit_code"] != 0 for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
