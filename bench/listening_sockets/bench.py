# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hardened.vllm.listening_sockets vs community.general.listen_ports_facts, and vs `ss`.

Run through run.sh, which makes the network namespace and removes it afterwards. This script
enters that namespace only to create the sockets (they stay there after it switches back), then
runs both modules the way Ansible runs a module without AnsiballZ (`python module.py args.json`)
inside the namespace with `ip netns exec`, the same number of times, alternating, and prints the
median wall time of each. It checks that our sockets equal `ss -ltnupH`'s (protocol, local
address as ss prints it, port) set, dual-stack `*` included, and the owning pids; then reads the
same namespace from outside with `namespaces: [<name>]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS = os.path.join(REPO, ".build", "collections")
OURS = "ansible_collections.hardened.vllm.plugins.modules.listening_sockets"
THEIRS = "ansible_collections.community.general.plugins.modules.listen_ports_facts"
CLONE_NEWNET = 0x40000000
BASE_PORT = 20000
# (family, address, v6only): the mix of TCP listeners, cycled over the ports.
MIX = [
    (socket.AF_INET, "127.0.0.1", None),
    (socket.AF_INET, "0.0.0.0", None),
    (socket.AF_INET6, "::1", 1),
    (socket.AF_INET6, "::", 1),
    (socket.AF_INET6, "::", 0),
    (socket.AF_INET6, "::ffff:127.0.0.1", 0),
]
UDP = [(socket.AF_INET, "127.0.0.1", None), (socket.AF_INET6, "::", 0), (socket.AF_INET6, "::", 1)]


def setns(fd):
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    import ctypes

    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def open_sockets(netns, count):
    """``count`` TCP listeners (cycling MIX) and the UDP sockets, created inside ``netns``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + len(UDP) + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    setns(target)
    os.close(target)
    held = []
    try:
        for kind, specs, total, base in (
            (socket.SOCK_STREAM, MIX, count, BASE_PORT),
            (socket.SOCK_DGRAM, UDP, len(UDP), BASE_PORT + count),
        ):
            for i in range(total):
                family, address, v6only = specs[i % len(specs)]
                sock = socket.socket(family, kind)
                if v6only is not None:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
                sock.bind((address, base + i))
                if kind == socket.SOCK_STREAM:
                    sock.listen(1)
                held.append(sock)
    finally:
        setns(own)
        os.close(own)
    return held


def run_module(name, args, netns, workdir):
    """Run a module as ``python -m <module> args.json`` (a module's own directory must not be
    on sys.path: community.general's holds a ``pkgutil.py``). Returns (seconds, result)."""
    args_file = os.path.join(workdir, "args.json")
    with open(args_file, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([COLLECTIONS, *sys.path]), LC_ALL="C")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    start = time.perf_counter()
    done = subprocess.run(
        [*prefix, sys.executable, "-m", name, args_file],
        capture_output=True,
        env=env,
        cwd=workdir,
        check=False,
    )
    elapsed = time.perf_counter() - start
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise SystemExit(
            f"{name} printed no JSON (rc {done.returncode}): {done.stderr.decode()[-2000:]}"
        ) from None
    if result.get("failed"):
        raise SystemExit(f"{name} failed: {result.get('msg')}")
    return elapsed, result


def ss_view(netns):
    """{(proto, local address as ss prints it, port): sorted pids} from `ss -ltnupH`."""
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "ss", "-ltnupH"], capture_output=True, text=True, check=True
    ).stdout
    view = {}
    for line in out.splitlines():
        cells = line.split(None, 6)
        address, port = cells[4].rsplit(":", 1)
        pids = sorted(int(p) for p in re.findall(r"pid=(\d+)", cells[6] if len(cells) > 6 else ""))
        view[(cells[0], address, int(port))] = pids
    return view


def our_view(entries):
    view = {}
    for entry in entries:
        if entry["dual_stack"]:
            address = "*"
        elif entry["family"] == "ipv6":
            address = f"[{entry['address']}]"
        else:
            address = entry["address"]
        if entry["interface"]:
            address += f"%{entry['interface']}"
        view[(entry["protocol"], address, entry["port"])] = entry["pids"]
    return view


def agreement(ours, theirs):
    keys = set(ours) | set(theirs)
    same = set(ours) & set(theirs)
    pids = sum(1 for key in same if ours[key] == theirs[key])
    return len(same), len(keys), pids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "netns", help="name of an existing, empty network namespace (run.sh makes it)"
    )
    parser.add_argument("--sockets", type=int, default=10000, help="TCP listeners to open")
    parser.add_argument("--runs", type=int, default=3, help="runs of each module (median reported)")
    options = parser.parse_args()

    held = open_sockets(options.netns, options.sockets)
    print(
        f"opened {options.sockets} TCP listeners + {len(UDP)} UDP sockets "
        f"in netns {options.netns} (pid {os.getpid()})"
    )
    print(
        "mix: " + ", ".join(f"[{a}]{'' if v is None else ' v6only=' + str(v)}" for _f, a, v in MIX)
    )
    times = {"hardened.vllm.listening_sockets": [], "community.general.listen_ports_facts": []}
    with tempfile.TemporaryDirectory(prefix="ls-bench-") as workdir:
        for run in range(options.runs):
            took, ours = run_module(OURS, {}, options.netns, workdir)
            times["hardened.vllm.listening_sockets"].append(took)
            took, theirs = run_module(THEIRS, {"command": "ss"}, options.netns, workdir)
            times["community.general.listen_ports_facts"].append(took)
            found = len(theirs["ansible_facts"]["tcp_listen"]) + len(
                theirs["ansible_facts"]["udp_listen"]
            )
            print(
                f"run {run + 1}: ours {times['hardened.vllm.listening_sockets'][-1]:.3f} s, "
                f"listen_ports_facts {took:.3f} s ({found} entries)",
                flush=True,
            )
        ss = ss_view(options.netns)
        inside = our_view(ours["ansible_facts"]["listening_sockets"])
        took_outside, outside = run_module(OURS, {"namespaces": [options.netns]}, None, workdir)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"median of {options.runs}: {name}: {value:.3f} s")
    speedup = (
        medians["community.general.listen_ports_facts"] / medians["hardened.vllm.listening_sockets"]
    )
    print(f"speedup: {speedup:.1f}x")

    same, total, pids = agreement(inside, ss)
    print(
        f"agreement with ss -ltnupH (proto, address incl. dual-stack '*', port): {same}/{total} "
        f"= {100.0 * same / total:.2f}%; owning pids equal: {pids}/{same}"
    )
    netns_id = os.stat(f"/run/netns/{options.netns}").st_ino
    remote = our_view(
        e for e in outside["ansible_facts"]["listening_sockets"] if e["netns"] == netns_id
    )
    same_r, total_r, pids_r = agreement(remote, ss)
    print(
        f"from the host with namespaces: [{options.netns}] ({took_outside:.3f} s): "
        f"{same_r}/{total_r} "
        f"= {100.0 * same_r / total_r:.2f}%; owning pids equal: {pids_r}/{same_r}"
    )
    dual = sum(1 for key in ss if key[1] == "*")
    print(f"dual-stack sockets: ss {dual}, ours {sum(1 for key in inside if key[1] == '*')}")
    for sock in held:
        sock.close()
    ok = same == total and same_r == total_r and total >= options.sockets and speedup >= 10
    print("RESULT: " + ("PASS" if ok else "FAIL") + " (goal: >= 10x faster, 100% agreement)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
