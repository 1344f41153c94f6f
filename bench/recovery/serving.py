# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seconds until a data-parallel cluster serves again, seen from its head, without Ansible.

    serving.py HEAD_CONTAINER [DEADLINE_S]

Until DEADLINE_S (default 180) has passed since the start: in the head container (podman exec;
a container that is restarting simply fails an attempt), GET /health on vLLM's unix socket,
then CONCURRENT completions at once with vLLM's own key (from the root-only env file), and
counts per engine (vLLM's /metrics) who served them: an attempt counts only when every engine
the head knows served some (a head that lost a worker may still serve everything itself; the
lab showed it). Prints {"seconds": S, "attempts": N, "load": [L0, L1]} once every completion
succeeded (exit 0; L0 and L1: this host's 1-minute load average at the start and at the end),
or the last error at the deadline (exit 1). Used by bench/recovery/run.sh and
molecule/cluster/recovery.yml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CONCURRENT = 8
ONCE = r"""
import concurrent.futures, http.client, json, socket, sys
SOCKET = "/run/hardened-vllm/api.sock"
key = ""
for line in open("/etc/hardened-vllm/vllm.env"):
    if line.startswith("VLLM_API_KEY="):
        key = line.split("=", 1)[1].strip().strip('"')

class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(SOCKET)

def call(method, path, body=None, timeout=5):
    connection = Unix("localhost", timeout=timeout)
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    connection.request(method, path, body=body and json.dumps(body), headers=headers)
    answer = connection.getresponse()
    return answer.status, answer.read()

def served():
    # prompt tokens by engine (vLLM's /metrics, label engine="N")
    text = call("GET", "/metrics", timeout=10)[1].decode()
    return {line.split('engine="')[1].split('"')[0]: float(line.split()[-1])
            for line in text.splitlines() if line.startswith("vllm:prompt_tokens_total{")}

status, _ = call("GET", "/health")
if status != 200:
    sys.exit(f"/health answered {status}")
model = json.loads(call("GET", "/v1/models")[1])["data"][0]["id"]
before = served()
body = {"model": model, "prompt": "hello", "max_tokens": 4}
with concurrent.futures.ThreadPoolExecutor(int(sys.argv[1])) as pool:
    results = list(pool.map(lambda _: call("POST", "/v1/completions", body, 30)[0],
                            range(int(sys.argv[1]))))
if results != [200] * len(results):
    sys.exit(f"completions answered {results}")
after = served()
idle = sorted(e for e in after if after[e] <= before.get(e, 0))
if not after or idle:
    sys.exit(f"engine(s) {idle or 'none in /metrics'} served none of the completions")
"""


def main():
    head = sys.argv[1]
    deadline = float(sys.argv[2]) if len(sys.argv) > 2 else 180.0
    start, load = time.monotonic(), os.getloadavg()[0]
    attempts, error = 0, "no attempt"
    while time.monotonic() - start < deadline:
        attempts += 1
        try:
            done = subprocess.run(
                ["podman", "exec", head, "python3", "-c", ONCE, str(CONCURRENT)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            error = "an attempt took over 60 s"
            continue
        if done.returncode == 0:
            seconds = round(time.monotonic() - start, 1)
            loads = [round(load, 1), round(os.getloadavg()[0], 1)]
            print(json.dumps({"seconds": seconds, "attempts": attempts, "load": loads}))
            return 0
        error = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        time.sleep(3)
    print(
        f"not serving {deadline:.0f} s after the start ({attempts} attempts, load average "
        f"{load:.1f} then {os.getloadavg()[0]:.1f}): {error}"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
