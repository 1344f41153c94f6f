# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_socket_sources: owners from /proc/<pid>/fd, namespace discovery, and live kernel reads.

Fake /proc trees cover the per-process edge cases (vanished processes, pid reuse); the live
tests open real sockets on loopback/wildcard in this process, or in a network namespace made
with `unshare -n` (root only), and close them afterwards.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.hardened.vllm.plugins.module_utils import _socket_sources as src
from ansible_collections.hardened.vllm.plugins.module_utils import _sockets as s
from ansible_collections.hardened.vllm.plugins.module_utils._sockets import (
    NetlinkError,
    SocketError,
)

HAS_IPV6 = socket.has_ipv6 and os.path.exists("/proc/net/tcp6")


def fake_process(proc, pid, fds=None, comm=None, cmdline=None, netns=None):
    base = proc / str(pid)
    base.mkdir(parents=True)
    if fds is not None:
        (base / "fd").mkdir()
        for fd, target in fds.items():
            os.symlink(target, base / "fd" / str(fd))
    if comm is not None:
        (base / "comm").write_text(comm + "\n")
    if cmdline is not None:
        (base / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in cmdline))
    if netns is not None:
        (base / "ns").mkdir()
        os.link(netns, base / "ns" / "net")  # same inode, like a real nsfs file


def test_scan_socket_owners_maps_inodes_and_tolerates_vanished_processes(tmp_path):
    fake_process(tmp_path, 10, {3: "socket:[100]", 4: "/dev/null", 5: "socket:[200]"})
    fake_process(tmp_path, 11, {7: "socket:[100]", 8: "pipe:[100]"})
    fake_process(tmp_path, 12)  # exited between listdir and open: no fd directory
    (tmp_path / "self").mkdir()
    assert src.scan_socket_owners({100}, str(tmp_path)) == {100: [10, 11]}
    assert src.scan_socket_owners({100, 200, 300}, str(tmp_path)) == {100: [10, 11], 200: [10]}


def test_read_process(tmp_path):
    fake_process(tmp_path, 42, comm="vllm", cmdline=["/opt/vllm/bin/python", "-m", "vllm", ""])
    fake_process(tmp_path, 43, comm="kworker/0:1", cmdline=[])
    assert src.read_process(42, str(tmp_path)) == (
        "vllm",
        ["/opt/vllm/bin/python", "-m", "vllm", ""],
    )
    assert src.read_process(43, str(tmp_path)) == ("kworker/0:1", [])
    assert src.read_process(44, str(tmp_path)) == (None, [])


def test_discover_namespaces_groups_names_and_pids_by_inode(tmp_path):
    proc, run = tmp_path / "proc", tmp_path / "netns"
    run.mkdir()
    (run / "blue").write_text("")
    (run / "red").write_text("")
    fake_process(proc, 20, netns=run / "blue")
    fake_process(proc, 21, netns=run / "blue")
    fake_process(proc, 22)  # no ns/net readable
    found = src.discover_namespaces(str(proc), str(run))
    blue, red = os.stat(run / "blue").st_ino, os.stat(run / "red").st_ino
    assert found[blue]["names"] == ["blue"]
    assert sorted(found[blue]["paths"]) == sorted(
        [f"{run}/blue", f"{proc}/20/ns/net", f"{proc}/21/ns/net"]
    )
    assert found[blue]["paths"][0] == f"{run}/blue"  # a name is the preferred way in
    assert found[red] == {"names": ["red"], "paths": [f"{run}/red"]}
    assert len(found) == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchns", "'nosuchns': cannot open {run}/nosuchns: No such file or directory"),
        (
            "999999999",
            "'999999999': cannot open {proc}/999999999/ns/net: No such file or directory",
        ),
        ("../etc", "'../etc' is neither 'all', a pid, a name under {run} nor an absolute path"),
    ],
)
def test_resolve_namespace_errors_name_the_item(tmp_path, spec, message):
    proc, run = str(tmp_path / "proc"), str(tmp_path / "netns")
    with pytest.raises(SocketError) as caught:
        src.resolve_namespace(spec, proc, run)
    assert str(caught.value) == "namespaces: " + message.format(run=run, proc=proc)


def test_plan_targets(tmp_path):
    proc, run = tmp_path / "proc", tmp_path / "netns"
    run.mkdir()
    for name in ("own", "blue", "red"):
        (tmp_path / name).write_text("")
    os.link(tmp_path / "blue", run / "blue")
    fake_process(proc, 1, netns=tmp_path / "own")
    fake_process(proc, 30, netns=tmp_path / "red")
    own = os.stat(tmp_path / "own").st_ino
    only_own = src.plan_targets([], own, str(proc), str(run))
    assert [(t.ino, t.paths) for t in only_own] == [(own, [])]
    every = src.plan_targets(["all"], own, str(proc), str(run))
    assert every[0].ino == own
    assert {t.ino for t in every} == {
        own,
        os.stat(run / "blue").st_ino,
        os.stat(tmp_path / "red").st_ino,
    }
    assert not any(t.required for t in every)
    named = src.plan_targets(["all", "blue", "1"], own, str(proc), str(run))
    assert {t.names[0] for t in named if t.required} == {"blue"}  # pid 1 is our own namespace


# --- live: this process's network namespace -------------------------------------------------


@pytest.fixture
def live_sockets():
    """A TCP IPv4 loopback listener, a UDP wildcard socket and, with IPv6, a dual-stack and a
    v6only '::' listener, all on kernel-chosen ports; closed afterwards."""
    held = {}
    tcp4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp4.bind(("127.0.0.1", 0))
    tcp4.listen()
    held[("tcp", "127.0.0.1")] = tcp4
    udp4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp4.bind(("0.0.0.0", 0))
    held[("udp", "0.0.0.0")] = udp4
    if HAS_IPV6:
        for v6only in (0, 1):
            tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            tcp6.bind(("::", 0))
            tcp6.listen()
            held[("tcp", "::", v6only)] = tcp6
    yield {key: sock.getsockname()[1] for key, sock in held.items()}
    for sock in held.values():
        sock.close()


def by_port(entries):
    return {(e["protocol"], e["port"]): e for e in entries}


def test_gather_live_own_namespace(live_sockets):
    entries, summary = src.gather()
    found = by_port(entries)
    tcp4 = found[("tcp", live_sockets[("tcp", "127.0.0.1")])]
    assert (tcp4["address"], tcp4["loopback"], tcp4["wildcard"]) == ("127.0.0.1", True, False)
    assert tcp4["pid"] == os.getpid()
    assert tcp4["pids"] == [os.getpid()]
    with open("/proc/self/cmdline", "rb") as handle:
        assert tcp4["cmdline"] == [arg.decode() for arg in handle.read().split(b"\0")[:-1]]
    with open("/proc/self/comm", encoding="utf-8") as handle:
        assert tcp4["process"] == handle.read().strip()
    assert tcp4["uid"] == os.getuid()
    assert tcp4["source"] == "sock_diag"
    assert tcp4["netns"] == os.stat("/proc/self/ns/net").st_ino
    udp4 = found[("udp", live_sockets[("udp", "0.0.0.0")])]
    assert (udp4["wildcard"], udp4["dual_stack"], udp4["pid"]) == (True, False, os.getpid())
    if HAS_IPV6:
        assert found[("tcp", live_sockets[("tcp", "::", 0)])]["dual_stack"] is True
        assert found[("tcp", live_sockets[("tcp", "::", 1)])]["dual_stack"] is False
    assert summary["total"] == len(entries)
    assert summary["tcp"] + summary["udp"] == len(entries)
    assert summary["sources"] == ["sock_diag"]


def test_gather_live_proc_method_sees_the_same_sockets(live_sockets):
    diag, _summary = src.gather(method="sock_diag")
    proc, _summary = src.gather(method="proc")
    view = {(e["protocol"], e["address"], e["port"], e["inode"], e["pid"]) for e in diag}
    assert view == {(e["protocol"], e["address"], e["port"], e["inode"], e["pid"]) for e in proc}
    assert {e["source"] for e in proc} == {"proc"}


def test_gather_live_protocol_filter(live_sockets):
    entries, _summary = src.gather(protocols=["udp"])
    assert entries
    assert {e["protocol"] for e in entries} == {"udp"}


def test_unsupported_sock_diag_falls_back_to_proc_only_in_auto(monkeypatch, live_sockets):
    def refuse(_sock, protocol, _family, _seq):
        if protocol == "udp":
            raise NetlinkError(errno.ENOENT, "sock_diag: kernel answered udp dump with errno 2")
        return real(_sock, protocol, _family, _seq)

    real = src.sock_diag_dump
    monkeypatch.setattr(src, "sock_diag_dump", refuse)
    entries, summary = src.gather()
    found = by_port(entries)
    assert found[("udp", live_sockets[("udp", "0.0.0.0")])]["source"] == "proc"
    assert found[("tcp", live_sockets[("tcp", "127.0.0.1")])]["source"] == "sock_diag"
    assert any("errno 2" in warning for warning in summary["warnings"])
    with pytest.raises(NetlinkError):
        src.gather(method="sock_diag")


# --- live: a network namespace made for the test ---------------------------------------------

HOLDER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.fixture
def other_netns():
    """(pid, port) of a process in a fresh network namespace holding a dual-stack listener."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not HAS_IPV6:
        pytest.skip("needs root, unshare(1) and IPv6 to create a network namespace")
    holder = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = holder.stdout.readline()
    if not line.strip():
        holder.kill()
        holder.wait()
        pytest.skip("unshare --net failed here")
    yield holder.pid, int(line)
    holder.stdin.close()
    holder.wait(timeout=10)


def listeners_in(entries, netns):
    return {
        (e["protocol"], e["address"], e["port"], e["dual_stack"])
        for e in entries
        if e["netns"] == netns
    }


@pytest.mark.parametrize("method", ["sock_diag", "proc"])
def test_gather_reads_another_namespace_by_pid(other_netns, method):
    pid, port = other_netns
    netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    assert netns != os.stat("/proc/self/ns/net").st_ino
    entries, summary = src.gather(namespaces=[str(pid)], method=method)
    assert listeners_in(entries, netns) == {("tcp", "::", port, True)}
    mine = next(e for e in entries if e["netns"] == netns)
    assert mine["source"] == method
    assert mine["netns_is_host"] is False
    assert pid in mine["pids"]  # unshare execs python: the same pid
    assert [n["id"] for n in summary["namespaces"]] == [os.stat("/proc/self/ns/net").st_ino, netns]


def test_gather_all_namespaces_finds_the_test_namespace(other_netns):
    pid, port = other_netns
    netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    entries, _summary = src.gather(namespaces=["all"])
    assert listeners_in(entries, netns) == {("tcp", "::", port, True)}


def test_without_setns_rights_a_pid_namespace_is_read_from_proc(monkeypatch, other_netns):
    pid, port = other_netns
    netns = os.stat(f"/proc/{pid}/ns/net").st_ino

    def denied(_fd):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(src, "_setns", denied)
    entries, summary = src.gather(namespaces=[str(pid)])
    assert listeners_in(entries, netns) == {("tcp", "::", port, True)}  # bindv6only=0 assumed
    assert any(f"read /proc/{pid}/net" in warning for warning in summary["warnings"])
    with pytest.raises(SocketError, match=f"netns {netns} .*setns"):
        src.gather(namespaces=[str(pid)], method="sock_diag")


# --- sock_diag_dump against recorded answers -------------------------------------------------

FIXTURES = Path(__file__).parents[2] / "fixtures" / "proc_net"


def recorded_messages(name):
    """The recorded netlink messages of one dump, one bytes object per message."""
    data = (FIXTURES / name).read_bytes()
    messages, offset = [], 0
    while offset < len(data):
        length = struct.unpack_from("=I", data, offset)[0]
        messages.append(bytearray(data[offset : offset + length]))
        offset += (length + 3) & ~3
    return messages


def datagram(messages, seq, flags=0):
    """Copies of ``messages`` with sequence number ``seq`` and ``flags`` added, as one datagram."""
    messages = [bytearray(m) for m in messages]
    for message in messages:
        struct.pack_into("=I", message, 8, seq)
        struct.pack_into("=H", message, 6, struct.unpack_from("=H", message, 6)[0] | flags)
    return b"".join(bytes(m) for m in messages)


class FakeNetlink:
    """Queues one list of datagrams per request sent, behind whatever was not read yet."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.sent = []
        self.queue = []

    def send(self, data):
        self.sent.append(struct.unpack_from("=IHHI", data)[3])
        self.queue.extend(self.answers.pop(0))  # like a socket: unread data stays queued

    def recvmsg(self, _size):
        return self.queue.pop(0), [], 0, None

    def recv(self, _size):
        return self.queue.pop(0)


def test_sock_diag_dump_repeats_an_interrupted_dump():
    body = recorded_messages("diag_tcp_ipv6.bin")
    *sockets, done = body
    assert len(sockets) == 4
    interrupted = [datagram(sockets[:2], 7, s.NLM_F_DUMP_INTR), datagram([*sockets[2:], done], 7)]
    clean = [datagram(sockets[:3], 8), datagram([sockets[3], done], 8)]
    fake = FakeNetlink([interrupted, clean])
    records = src.sock_diag_dump(fake, "tcp", "ipv6", 7)
    assert fake.sent == [7, 8]
    assert fake.queue == []  # the rest of the interrupted dump was drained, not parsed as answer
    assert sorted(r["port"] for r in records) == [42103, 42104, 42105, 42106]


def test_sock_diag_dump_gives_up_after_repeated_interruptions():
    *sockets, done = recorded_messages("diag_udp_ipv4.bin")
    answers = [[datagram([*sockets, done], seq, s.NLM_F_DUMP_INTR)] for seq in (1, 2, 3)]
    with pytest.raises(SocketError, match="interrupted 3 times"):
        src.sock_diag_dump(FakeNetlink(answers), "udp", "ipv4", 1)
