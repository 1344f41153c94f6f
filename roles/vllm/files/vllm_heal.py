# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep a node's vLLM in its data-parallel group without Ansible (hardened.vllm.vllm).

    vllm_heal.py watch --config /etc/hardened-vllm/heal.json    the watchdog (its own unit)
    vllm_heal.py wait --config ... --timeout 900               the role's health wait

The engines of a data-parallel group join the head once, at start: a node that restarts alone
(reboot, crash, OOM) cannot rejoin, and the group stays broken until every node restarts. The
watchdog watches from the node itself, passively, and restarts only its own node's vLLM:

- head (serves the API on a unix socket): restarts when /health fails after this invocation was
  healthy (its engines are gone), or when it keeps refusing TCP connections while it serves (a
  worker that restarted alone knocks on the DP RPC port, which listens only during start-up;
  its connects are retried several times a second). Refusals are counted from the node's TCP
  counters (OutRsts in /proc/net/snmp): peers are the only ones whose packets reach a closed port
  (the firewall drops everyone else's), and a knocking worker keeps the rate up for the whole
  `misses` checks, where a single probe does not.
- worker (headless): restarts when this invocation had joined the head (established connections
  from the service's user to the head) and those connections are gone, or a fresh TCP connect to
  the head's port of one of them is refused (the head restarted: a new process, new ports). It
  never connects to the DP RPC port, so it cannot look like a knock.

It holds no credentials, opens no listener, and sends nothing but that TCP connect to a port
the head's vLLM already listens on for peers. Bounded: a heal needs `misses` bad checks in a
row, waits `backoff` * 2**(try - 1) s before try 2 and on, and after `max_tries` heals that did
not make the group whole again it gives up: the unit fails (systemctl status, journal) and
state.json says failed. The last healthy invocation is recorded (healthy.json, the same record
the role writes) so restart decisions count from there.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import pwd
import socket
import subprocess
import sys
import time

PROPERTIES = (
    "ActiveState",
    "SubState",
    "MainPID",
    "NRestarts",
    "InvocationID",
    "ActiveEnterTimestampMonotonic",
)
ESTABLISHED = "01"


# --- reading the node (pure parsers first) -----------------------------------------------


def parse_show(text):
    """`systemctl show` output -> {property: value}."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _addr4(hex_text):
    return ipaddress.IPv4Address(bytes.fromhex(hex_text)[::-1])


def _addr6(hex_text):
    raw = bytes.fromhex(hex_text)
    # /proc/net/tcp6 prints four 32-bit words, each in host (little-endian) order.
    return ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))


def parse_proc_tcp(text, v6=False):
    """/proc/net/tcp{,6} -> [(local, lport, remote, rport, state, uid)], v4-mapped unmapped."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        (laddr, lport), (raddr, rport) = (f.split(":") for f in fields[1:3])
        parse = _addr6 if v6 else _addr4
        local, remote = parse(laddr), parse(raddr)
        if v6:
            local = local.ipv4_mapped or local
            remote = remote.ipv4_mapped or remote
        rows.append((local, int(lport, 16), remote, int(rport, 16), fields[3], int(fields[7])))
    return rows


def connections_to(rows, address, uid):
    """Remote ports of the established connections of uid with address."""
    target = ipaddress.ip_address(address)
    return sorted(
        {
            rport
            for _l, _lp, remote, rport, state, owner in rows
            if state == ESTABLISHED and owner == uid and remote == target
        }
    )


def parse_snmp_tcp(text):
    """/proc/net/snmp -> the Tcp counters, e.g. {"OutRsts": 7, ...}."""
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:")]
    if len(rows) < 2:
        return {}
    names, values = rows[0], rows[1]
    return {
        name: int(values[i])
        for i, name in enumerate(names[: len(values)])
        if values[i].lstrip("-").isdigit()
    }


def read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


class Node:
    """The node as the watchdog sees it; every side effect goes through here (tests replace it)."""

    def __init__(self, config):
        self.config = config

    def show(self):
        argv = ["systemctl", "show", self.config["unit"]] + [f"--property={p}" for p in PROPERTIES]
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        return parse_show(out)

    def health(self):
        """Whether vLLM answers /health with 200 on its unix socket."""
        path = self.config["socket"]

        class Unix(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(10)
                self.sock.connect(path)

        try:  # a busy server may answer late: 10 s, and only `misses` misses in a row count
            connection = Unix("localhost", timeout=10)
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def tcp_rows(self):
        return parse_proc_tcp(read("/proc/net/tcp")) + parse_proc_tcp(read("/proc/net/tcp6"), True)

    def resets_sent(self):
        """TCP resets this node's kernel sent so far (OutRsts of its network namespace)."""
        return parse_snmp_tcp(read("/proc/net/snmp")).get("OutRsts")

    def connect(self, address, port):
        """Whether a TCP connection to address:port opens (closed at once, nothing sent)."""
        try:
            with socket.create_connection((address, port), timeout=3):
                return True
        except OSError:
            return False

    def restart(self):
        unit = self.config["unit"]
        subprocess.run(["systemctl", "reset-failed", unit], check=False)
        return subprocess.run(["systemctl", "restart", "--no-block", unit], check=False).returncode

    def journal_lines(self, seconds):
        argv = [
            "journalctl",
            "--unit",
            self.config["unit"],
            "--since",
            f"-{seconds}s",
            "--output",
            "cat",
            "--quiet",
            "--no-pager",
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        return [line for line in out.splitlines() if line.strip()]

    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)

    def log(self, message):
        print(message, flush=True)


def write_json(path, data):
    """Atomically replace path with data as JSON (sorted keys, one line, like the role writes)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# --- the watchdog ---------------------------------------------------------------------------


class Watchdog:
    """One check per tick(); heals its own node's vLLM when its group lost it."""

    def __init__(self, config, node, uid):
        self.c = config
        self.node = node
        self.uid = uid
        self.whole_invocation = None  # the invocation seen whole (healthy, joined)
        self.recorded = (read_json(config["record"]) or {}).get("invocation")
        self.misses = 0
        self.reason = ""
        self.tries = 0
        self.healed_at = None  # when the last heal was started
        self.last_resets = None
        self.state = "starting"
        self.warned = set()

    # Each check answers (whole, lost_reason): whole = this node is part of a whole group now;
    # lost_reason = why the group lost this node (None when it did not).
    def check_head(self, running):
        healthy = running and self.node.health()
        resets, now = self.node.resets_sent(), self.node.now()
        rate = None
        if self.last_resets is not None and resets is not None and now > self.last_resets[1]:
            rate = (resets - self.last_resets[0]) / (now - self.last_resets[1])
        self.last_resets = (resets, now) if resets is not None else None
        if not healthy:
            return False, "its API no longer answers /health (its engines are gone)"
        if self.whole_invocation != self.invocation or rate is None:
            return True, None  # the first healthy check: no rate from before to compare
        if rate >= self.c.get("knock_rate", 5):
            return True, (
                f"it keeps refusing TCP connections ({rate:.0f}/s) while it serves: a worker "
                f"that restarted alone knocks on the DP RPC port {self.c['rpc_port']}, which "
                "listens only during start-up"
            )
        return True, None

    def check_worker(self, running):
        if not running:
            return False, None
        ports = [
            p
            for p in connections_to(self.node.tcp_rows(), self.c["head"], self.uid)
            if p != self.c["rpc_port"]
        ]
        if not ports:
            return False, f"its connections to the head {self.c['head']} are gone"
        if not self.node.connect(self.c["head"], ports[0]):
            return False, (
                f"the head {self.c['head']} no longer listens on port {ports[0]} (it restarted)"
            )
        return True, None

    def tick(self):
        props = self.node.show()
        self.invocation = props.get("InvocationID", "")
        active = props.get("ActiveState")
        running = active == "active" and props.get("MainPID", "0") not in ("", "0")
        check = self.check_head if self.c["socket"] else self.check_worker
        whole, lost = check(running)
        if whole and lost is None:
            if self.whole_invocation != self.invocation:
                self.node.log(
                    f"whole: {self.c['unit']} (invocation {self.invocation}) serves "
                    "in its group" + (f" again after {self.tries} heal(s)" if self.tries else "")
                )
            self.whole_invocation = self.invocation
            self.misses, self.tries, self.healed_at = 0, 0, None
            self.state = "healthy"
            if self.recorded != self.invocation:
                write_json(
                    self.c["record"],
                    {"invocation": self.invocation, "n_restarts": int(props.get("NRestarts") or 0)},
                )
                self.recorded = self.invocation
            return
        if self.healed_at is not None and self.node.now() - self.healed_at > self.c["heal_timeout"]:
            self.reason = f"not whole again {self.c['heal_timeout']} s after heal {self.tries}" + (
                f": {lost}" if lost else ""
            )
            self.heal()
            return
        was_whole = self.whole_invocation == self.invocation and bool(self.invocation)
        if active == "failed" and self.whole_invocation:
            lost = lost or f"{self.c['unit']} failed (systemd gave up restarting it)"
        elif not was_whole or lost is None:
            # Starting, stopped by hand or by a run: vLLM's own timeouts and systemd decide.
            self.misses = 0
            if self.state == "healthy":
                self.state = "starting"
            return
        self.misses += 1
        self.reason = lost
        if self.misses < self.c["misses"]:
            return
        self.heal()

    def heal(self):
        if self.tries >= self.c["max_tries"]:
            self.state = "failed"
            raise GiveUp(f"gave up after {self.tries} heal(s): {self.reason}")
        if self.tries:
            delay = self.c["backoff"] * 2 ** (self.tries - 1)
            self.node.log(
                f"backoff: {delay} s before heal {self.tries + 1} of {self.c['max_tries']}"
            )
            self.node.sleep(delay)
        self.tries += 1
        self.state = "healing"
        self.node.log(
            f"heal {self.tries} of {self.c['max_tries']}: restarting {self.c['unit']} "
            f"to rejoin its group: {self.reason}"
        )
        self.node.restart()
        self.healed_at = self.node.now()
        self.misses = 0
        # The restarted invocation counts as whole again only once its own checks pass.
        self.whole_invocation = "(healing)"

    def status(self):
        return {
            "state": self.state,
            "tries": self.tries,
            "reason": self.reason,
            "invocation": getattr(self, "invocation", ""),
            "at": int(time.time()),
        }


class GiveUp(Exception):
    pass


def watch(config, node):
    uid = pwd.getpwnam(config["user"]).pw_uid
    dog = Watchdog(config, node, uid)
    role = "head" if config["socket"] else f"worker of the head {config['head']}"
    node.log(f"watching {config['unit']} as the {role}, every {config['interval']} s")
    while True:
        try:
            dog.tick()
        except GiveUp as error:
            write_json(config["state"], dog.status())
            node.log(
                f"failed: {error}. Fix: look at journalctl -u {config['unit']}, then "
                "rerun playbooks/site.yml (it restarts the group and this watchdog)"
            )
            return 1
        write_json(config["state"], dog.status())
        node.sleep(config["interval"])


# --- the role's health wait ------------------------------------------------------------------


def active_entered(props):
    """When the unit last became active, on the clock of time.monotonic(); None if unknown.

    systemd's ActiveEnterTimestampMonotonic is CLOCK_MONOTONIC in microseconds, the clock
    time.monotonic() reads on Linux; 0 or missing when the unit never became active."""
    try:
        entered = int(props.get("ActiveEnterTimestampMonotonic") or 0)
    except ValueError:
        return None
    return entered / 1e6 if entered > 0 else None


def wait(config, node, timeout, settle=15):
    """0 when healthy; else a message saying whether vLLM failed or is still starting.

    A unit without the API (a worker) is healthy once it has stayed active for ``settle``
    seconds, counted from when systemd made it active: one that has served for hours (a run
    with nothing to change) is healthy at once, one started by this run waits the full time."""
    start = node.now()
    first = node.show()
    restarts0 = int(first.get("NRestarts") or 0)
    active_since = None
    while node.now() - start < timeout:
        props = node.show()
        state = props.get("ActiveState", "")
        if state == "failed":
            return 1, (
                f"failed: {config['unit']} gave up (start limit) after "
                f"{props.get('NRestarts', '?')} restarts"
            )
        if config["socket"]:
            if state == "active" and node.health():
                return 0, f"{round(node.now() - start, 1)}"
        elif state == "active":
            entered = active_entered(props)
            if entered is not None and entered <= node.now():
                active_since = entered
            elif active_since is None:
                active_since = node.now()
            if node.now() - active_since >= settle:
                return 0, f"{round(node.now() - start, 1)}"
        else:
            active_since = None
        node.sleep(2)
    return verdict(config, node, timeout, restarts0)


def verdict(config, node, timeout, restarts0):
    """At the deadline: still starting (the process runs) or failed (it does not: a crash loop).

    A process that runs may be silent for minutes on a loaded machine (imports) and may be a
    second attempt after vLLM gave up on the first (the DP coordinator's fixed 120 s)."""
    props = node.show()
    restarts = max(int(props.get("NRestarts") or 0) - restarts0, 0)
    running = props.get("ActiveState") == "active" and props.get("MainPID", "0") not in ("", "0")
    recent = node.journal_lines(60)
    last = recent[-1] if recent else "(none)"
    again = f", after {restarts} restart(s) by systemd during the wait" if restarts else ""
    if running:
        return 3, (
            f"still starting: no /health within {timeout:.0f} s, but the process runs{again}; "
            f"{len(recent)} log line(s) in the last 60 s (last: {last!r}). It may become "
            "healthy by itself (the next run finds out); on a loaded machine raise "
            "vllm_health_timeout"
        )
    return 1, (
        f"failed: {restarts} restart(s) by systemd during the {timeout:.0f} s wait (crash "
        f"loop), the unit is {props.get('ActiveState')}/{props.get('SubState')} (last log "
        f"line: {last!r})"
    )


NUMBERS = ("rpc_port", "interval", "misses", "max_tries", "backoff", "heal_timeout", "knock_rate")


def normalize(config):
    """The settings with their numbers as numbers (the role writes them from templates)."""
    fixed = dict(config)
    for name in NUMBERS:
        if fixed.get(name) is not None:
            fixed[name] = float(fixed[name]) if name == "knock_rate" else int(fixed[name])
    return fixed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("watch", "wait"))
    parser.add_argument("--config", required=True)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    config = read_json(args.config)
    if config is None:
        return f"{args.config}: not a JSON object (written by hardened.vllm.vllm)"
    try:
        config = normalize(config)
    except (TypeError, ValueError) as error:
        return f"{args.config}: a number is not a number ({error})"
    node = Node(config)
    if args.mode == "watch":
        return watch(config, node)
    rc, message = wait(config, node, args.timeout)
    print(message) if rc == 0 else print(message, file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
