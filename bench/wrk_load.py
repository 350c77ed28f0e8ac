"""Closed-loop load from wrk (a C load generator; Debian's `wrk` package), for the figures a Python client would cap.

On 2 cores the Python generator (loadgen.py) costs about as much CPU per request as the bare Starlette endpoint does
to answer it, so it measures itself as much as the server. wrk costs a few microseconds per request. Its Lua script
(bench/wrk/signed_webhooks.lua) sends pre-built requests from a file, each a distinct signed ORDER_CONFIRMED as
loadgen.build_request makes them, and prints counts and latency percentiles as one JSON line from its done() hook.

    result = closed_loop("127.0.0.1", port, requests, connections=32, time_limit=60)
    result.rate, result.ok, result.percentile(99)

Each order is sent once (a thread stops when its share is sent; `time_limit` bounds the run), unless `cycle=True`
(the bare baseline, for which repeats do not matter: it runs for `time_limit` seconds).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "signed_webhooks.lua"
RESULT_PREFIX = "WRK_RESULT "


class WrkMissing(RuntimeError):
    pass


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing("wrk is not installed (Debian: apt-get install wrk)")
    return found


@dataclass
class WrkResult:
    """What wrk measured: the same names as loadgen.LoadResult where the two overlap (rate, ok, sent, statuses)."""

    sent: int  # answered requests (wrk counts a request when its answer is complete)
    ok: int
    statuses: dict[int, int] = field(default_factory=dict)  # 0 = socket errors (connect, read, write, timeout)
    elapsed: float = 0.0
    latency_us: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, p999, mean, min, max

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)

    def percentile(self, q: float) -> float:
        """Seconds; q one of 50, 90, 99, 99.9."""
        key = {50: "p50", 90: "p90", 99: "p99", 99.9: "p999"}[q]
        return self.latency_us[key] / 1e6


def write_requests(path: Path, requests: list[bytes]) -> None:
    """The Lua script's input: records "<byte length>\\n<raw request>"."""
    with open(path, "wb") as out:
        for request in requests:
            out.write(b"%d\n" % len(request))
            out.write(request)


def parse_output(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"wrk printed no result line:\n{stdout[-2000:]}")


def to_result(raw: dict) -> WrkResult:
    statuses: dict[int, int] = {}
    if raw["status_200"]:
        statuses[200] = raw["status_200"]
    for code in filter(None, raw["other_codes"].split(",")):
        statuses[int(code)] = statuses.get(int(code), 0) + 1
    listed = sum(v for k, v in statuses.items() if k != 200)
    if raw["status_other"] > listed:  # only the first codes are listed; the rest are counted
        statuses[-1] = raw["status_other"] - listed
    socket_errors = sum(raw[f"errors_{kind}"] for kind in ("connect", "read", "write", "timeout"))
    if socket_errors:
        statuses[0] = socket_errors
    return WrkResult(sent=raw["requests"] + socket_errors, ok=raw["status_200"], statuses=statuses,
                     elapsed=(raw["elapsed_us"] or raw["duration_us"]) / 1e6, latency_us=raw["latency_us"])


def closed_loop(host: str, port: int, requests: list[bytes], *, connections: int, time_limit: float,
                threads: int = 2, cycle: bool = False, request_timeout: float = 30.0) -> WrkResult:
    """`connections` keep-alive connections, each sending its next request as soon as the previous is answered."""
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="wrk-") as folder:
        requests_file = Path(folder) / "requests.bin"
        write_requests(requests_file, requests)
        command = [
            wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(time_limit))}s",
            f"--timeout={max(1, round(request_timeout))}s", "-s", str(LUA_SCRIPT), f"http://{host}:{port}/",
            "--", str(requests_file), str(threads), "cycle" if cycle else "once",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=time_limit + request_timeout + 30,
                              stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr[-2000:]}")
    return to_result(parse_output(done.stdout))
