# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small completions straight to vLLM's unix socket vs through the gateway, one process.

Run by run.sh inside the API node (a lab or bench container), with its settings as JSON on
stdin, so no key is ever on a command line:

    {"label": "...", "socket": "/run/hardened-vllm/api.sock", "direct_key": "<vllm_api_key>",
     "host": "10.86.70.2", "port": 8000, "gateway_key": "<a gateway key>", "ca": "<PEM>",
     "model": "tiny-llama", "max_tokens": 2, "concurrency": [1, 16, 64],
     "seconds": 10, "rounds": 3}

For each concurrency C and each round, both paths run one window of SECONDS each, the order
flipped every round (direct, gateway / gateway, direct / ...), so load drift on the shared
machine hits both alike. A window opens C keep-alive connections (one thread each), sends one
untimed request on each (TCP and TLS handshakes, vLLM's first token paths), then every thread
sends requests back to back on its connection until the window ends. Latency is the wall time
of one request (send to last byte of the body); req/s is the answered requests with status 200
over the window's length. Other statuses (429, 503, ...) and socket errors are counted, never
timed. Standard library only: http.client over AF_UNIX for the direct path, http.client over
ssl (TLS verified against the CA, IP SAN) for the gateway. The client's own TLS work counts to
the gateway, as it does for every real client.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import ssl
import sys
import threading
import time

PATH = "/v1/completions"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the Host header stays "localhost", as the gateway sends)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def target(cfg, path_name):
    """(connection factory, headers) for one path."""
    headers = {"Content-Type": "application/json"}
    if path_name == "direct":
        if cfg.get("direct_key"):
            headers["Authorization"] = f"Bearer {cfg['direct_key']}"
        return (lambda: UnixHTTPConnection(cfg["socket"], cfg["timeout"])), headers
    context = ssl.create_default_context(cadata=cfg["ca"])  # verifies chain and the IP SAN
    headers["Authorization"] = f"Bearer {cfg['gateway_key']}"
    host = cfg["host"]
    return (
        lambda: http.client.HTTPSConnection(
            host, cfg["port"], timeout=cfg["timeout"], context=context
        )
    ), headers


def one(conn, body, headers):
    """Send one completion; return (status, body bytes). Keeps the connection open."""
    conn.request("POST", PATH, body=body, headers=headers)
    answer = conn.getresponse()
    return answer.status, answer.read()


def window(cfg, path_name, concurrency, body):
    """Run one window; return (seconds, [latency s of each 200], {status or error: count})."""
    factory, headers = target(cfg, path_name)
    lock = threading.Lock()
    latencies, other = [], {}
    state = {"started": 0.0, "deadline": math.inf}

    def open_window():  # run by one thread once all are ready, before any is released
        state["started"] = time.perf_counter()
        state["deadline"] = state["started"] + cfg["seconds"]

    ready = threading.Barrier(concurrency + 1, action=open_window)

    def note(what):
        with lock:
            other[what] = other.get(what, 0) + 1

    def worker():
        conn = factory()
        mine = []
        try:
            status, data = one(conn, body, headers)  # warm-up: handshakes, untimed
            if status != 200:
                note(f"warm-up {status}: {data[:120].decode(errors='replace')}")
        except (OSError, http.client.HTTPException) as exc:
            note(f"warm-up {type(exc).__name__}: {exc}")
            conn.close()
            conn = factory()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        while time.perf_counter() < state["deadline"]:
            started = time.perf_counter()
            try:
                status = one(conn, body, headers)[0]
            except (OSError, http.client.HTTPException) as exc:
                note(type(exc).__name__)
                conn.close()
                conn = factory()  # a fresh connection; its handshake is not timed
                continue
            if status == 200:
                mine.append(time.perf_counter() - started)
            else:
                note(status)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _thread in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()
    return time.perf_counter() - state["started"], latencies, other


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of a sorted list (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def main():
    cfg = {"timeout": 120.0, "seconds": 10.0, "rounds": 3, "concurrency": [1, 16, 64]}
    cfg.update(json.load(sys.stdin))
    body = json.dumps(
        {"model": cfg["model"], "prompt": "hello", "max_tokens": cfg["max_tokens"]}
    ).encode()
    paths = ("direct", "gateway")
    print(cfg["label"])
    print(
        f"POST {PATH} max_tokens {cfg['max_tokens']}; per concurrency {cfg['rounds']} rounds x "
        f"{cfg['seconds']:g} s per path, order flipped each round; keep-alive; "
        f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        flush=True,
    )
    results = {}
    for concurrency in cfg["concurrency"]:
        per_path = {p: {"seconds": 0.0, "latencies": [], "other": {}, "rps": []} for p in paths}
        for round_no in range(cfg["rounds"]):
            order = paths if round_no % 2 == 0 else paths[::-1]
            for path_name in order:
                seconds, latencies, other = window(cfg, path_name, concurrency, body)
                acc = per_path[path_name]
                acc["seconds"] += seconds
                acc["latencies"] += latencies
                acc["rps"].append(len(latencies) / seconds)
                for what, count in other.items():
                    acc["other"][what] = acc["other"].get(what, 0) + count
                print(
                    f"  c{concurrency} round {round_no + 1} {path_name:<7} "
                    f"{len(latencies) / seconds:9.1f} req/s",
                    file=sys.stderr,
                    flush=True,
                )
        results[concurrency] = per_path

    print(
        f"{'conc':>4} {'path':<7} {'requests':>8} {'not 200':>7} {'req/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8}   req/s per round"
    )
    for concurrency, per_path in results.items():
        for path_name in paths:
            acc = per_path[path_name]
            lat = sorted(acc["latencies"])
            failed = sum(acc["other"].values())
            print(
                f"{concurrency:>4} {path_name:<7} {len(lat):>8} {failed:>7} "
                f"{len(lat) / acc['seconds']:>9.1f} {percentile(lat, 0.50) * 1e3:>8.2f} "
                f"{percentile(lat, 0.99) * 1e3:>8.2f}   {' '.join(f'{r:.1f}' for r in acc['rps'])}"
            )
    print()
    print("target (issue): the gateway costs < 5% throughput and < 2 ms p50")
    print(f"{'conc':>4} {'gw/direct req/s':>15} {'p50 diff ms':>11} {'p99 diff ms':>11}   verdict")
    for concurrency, per_path in results.items():
        d, g = per_path["direct"], per_path["gateway"]
        d_lat, g_lat = sorted(d["latencies"]), sorted(g["latencies"])
        d_rps, g_rps = len(d_lat) / d["seconds"], len(g_lat) / g["seconds"]
        ratio = g_rps / d_rps if d_rps else math.nan
        p50 = (percentile(g_lat, 0.5) - percentile(d_lat, 0.5)) * 1e3
        p99 = (percentile(g_lat, 0.99) - percentile(d_lat, 0.99)) * 1e3
        verdict = "throughput " + ("met" if ratio >= 0.95 else "MISSED")
        verdict += ", p50 " + ("met" if p50 < 2.0 else "MISSED")
        print(f"{concurrency:>4} {ratio:>15.3f} {p50:>+11.2f} {p99:>+11.2f}   {verdict}")
    for concurrency, per_path in results.items():
        for path_name in paths:
            for what, count in sorted(per_path[path_name]["other"].items(), key=str):
                print(f"c{concurrency} {path_name}: {count} x {what}")


if __name__ == "__main__":
    main()
