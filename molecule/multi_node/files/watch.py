# Copyright: hardened.vllm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch listeners during vLLM's start-up and probe them while they are up (molecule multi_node).

    watch.py sample DIR HOST        on a node: every 0.5 s, the listening TCP sockets (from
                                    /proc/net/tcp{,6}), once the firewall's table is loaded;
                                    appends "up"/"down" events to DIR/HOST.listeners
    watch.py probe DIR VANTAGE JSON on a peer or the outsider: JSON maps the other nodes to
                                    {"ipv4": ..., "ipv6": ...}; connects to every listener
                                    their samplers report as up (each address at most every
                                    5 s) and appends the outcome to DIR/VANTAGE.probes
    watch.py report DIR JSON        on the controller: one JSON summary of both; JSON maps
                                    each vantage to the nodes it probes, and the summary
                                    lists the listeners (non-loopback, up for 3 s or more)
                                    a vantage never probed

Outcomes: open (connected), refused (a RST: the packet got through, nothing listened any more),
timeout (no answer: the firewall dropped it). Runs with the node's python3, stdlib only.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time

TABLE = ["nft", "list", "table", "inet", "hardened_vllm"]


def _listening(path, family):
    """{(family, address, port): uid} of the TCP sockets in LISTEN state in one /proc file."""
    found = {}
    try:
        with open(path, encoding="ascii") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[3] != "0A":
                    continue
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                if family == "ipv4":
                    ip = str(ipaddress.IPv4Address(raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    ip = str(ipaddress.IPv6Address(words))
                found[(family, ip, int(port, 16))] = int(fields[7])
    except FileNotFoundError:
        pass
    return found


def _append(path, record):
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")


def sample(folder, host):
    out = os.path.join(folder, f"{host}.listeners")
    while subprocess.run(TABLE, capture_output=True, check=False).returncode:
        time.sleep(0.5)
    _append(out, {"t": time.time(), "event": "firewall"})
    seen = {}
    while True:
        now = time.time()
        current = _listening("/proc/net/tcp", "ipv4")
        current.update(_listening("/proc/net/tcp6", "ipv6"))
        for key, uid in current.items():
            if key not in seen:
                _append(
                    out,
                    {
                        "t": now,
                        "event": "up",
                        "family": key[0],
                        "address": key[1],
                        "port": key[2],
                        "uid": uid,
                    },
                )
        for key in set(seen) - set(current):
            _append(
                out,
                {"t": now, "event": "down", "family": key[0], "address": key[1], "port": key[2]},
            )
        seen = current
        time.sleep(0.5)


def _events(folder, host):
    try:
        with open(os.path.join(folder, f"{host}.listeners"), encoding="utf-8") as events:
            return [json.loads(line) for line in events if line.endswith("\n")]
    except FileNotFoundError:
        return []


def _up(events):
    up = {}
    for event in events:
        key = (event.get("family"), event.get("address"), event.get("port"))
        if event["event"] == "up":
            up[key] = event
        elif event["event"] == "down":
            up.pop(key, None)
    return up


def _targets(family, address, addresses):
    """Where a listener can be reached from another host: its address, or both for a wildcard."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped.is_loopback):
        return []
    if ip.is_unspecified:
        return [addresses["ipv4"]] if family == "ipv4" else [addresses["ipv4"], addresses["ipv6"]]
    if ip.version == 6 and ip.ipv4_mapped:
        return [str(ip.ipv4_mapped)]
    return [address]


def _connect(address, port):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.5)
        try:
            sock.connect((address, port))
            return "open"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as error:
            return f"error {error.errno}"


def probe(folder, vantage, nodes):
    out = os.path.join(folder, f"{vantage}.probes")
    last = {}
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        while True:
            jobs = {}
            for node, addresses in nodes.items():
                for family, address, port in _up(_events(folder, node)):
                    for target in _targets(family, address, addresses):
                        if time.time() - last.get((target, port), 0) >= 5:
                            last[(target, port)] = time.time()
                            jobs[pool.submit(_connect, target, port)] = (
                                node,
                                family,
                                address,
                                target,
                                port,
                                time.time(),
                            )
            for job in concurrent.futures.as_completed(jobs):
                node, family, address, target, port, began = jobs[job]
                _append(
                    out,
                    {
                        "t": began,
                        "node": node,
                        "family": family,
                        "address": address,
                        "target": target,
                        "port": port,
                        "result": job.result(),
                    },
                )
            time.sleep(0.5)


def report(folder, vantages):
    """Listeners seen per node (with their lifetimes), the probes' outcomes per vantage, and the
    listeners each vantage should have probed but did not."""
    result = {"listeners": {}, "probes": {}, "unprobed": {}}
    lived = {}
    for name in sorted(os.listdir(folder)):
        base, kind = os.path.splitext(name)
        if kind != ".listeners":
            continue
        events = _events(folder, base)
        start = [e["t"] for e in events if e["event"] == "firewall"]
        end = max((e["t"] for e in events), default=0)
        spans, opened = {}, {}
        for event in events:
            key = (event.get("family"), event.get("address"), event.get("port"))
            label = f"{key[0]} [{key[1]}]:{key[2]}"
            if event["event"] == "up":
                opened[key] = event["t"]
                spans.setdefault(label, []).append(
                    {"up": round(event["t"] - start[0], 1), "down": None, "uid": event["uid"]}
                )
            elif event["event"] == "down" and key in opened:
                spans[label][-1]["down"] = round(event["t"] - start[0], 1)
                if event["t"] - opened.pop(key) >= 3:
                    lived.setdefault(base, set()).add(key)
        lived.setdefault(base, set()).update(k for k, t in opened.items() if end - t >= 3)
        result["listeners"][base] = {"firewall_at": start[0] if start else None, "sockets": spans}
    for vantage, nodes in vantages.items():
        try:
            with open(os.path.join(folder, f"{vantage}.probes"), encoding="utf-8") as probes:
                records = [json.loads(line) for line in probes if line.endswith("\n")]
        except FileNotFoundError:
            records = []
        outcomes, probed = {}, set()
        for record in records:
            key = f"{record['node']} [{record['target']}]:{record['port']}"
            outcomes.setdefault(key, {}).setdefault(record["result"], 0)
            outcomes[key][record["result"]] += 1
            probed.add((record["node"], record["family"], record["address"], record["port"]))
        result["probes"][vantage] = outcomes
        result["unprobed"][vantage] = sorted(
            f"{node} {family} [{address}]:{port}"
            for node in nodes
            for family, address, port in lived.get(node, ())
            if (node, family, address, port) not in probed
            and _targets(family, address, {"ipv4": "x", "ipv6": "x"})
        )
    result["lines"] = [
        f"{node} {label} uid {span['uid']} up {span['up']}-{span['down'] or ''} s"
        for node, seen in sorted(result["listeners"].items())
        for label, spans in sorted(seen["sockets"].items())
        for span in spans
    ] + [
        f"{vantage} -> {key} " + " ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
        for vantage, outcomes in sorted(result["probes"].items())
        for key, counts in sorted(outcomes.items())
    ]
    print(json.dumps(result, sort_keys=True))


def main(argv):
    if argv[1] == "sample":
        sample(argv[2], argv[3])
    elif argv[1] == "probe":
        probe(argv[2], argv[3], json.loads(argv[4]))
    elif argv[1] == "report":
        report(argv[2], json.loads(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
