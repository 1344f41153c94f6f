# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read listening sockets, their owners and network namespaces from the running kernel.

The I/O half of ``_sockets.py``: sock_diag netlink dumps (with /proc/net as fallback),
entering other network namespaces with setns(2), mapping socket inodes to processes through
/proc/<pid>/fd. Processes may exit at any moment: every per-process read tolerates that.
Python 3.8+ and the standard library only.
"""

from __future__ import annotations

import errno
import os
import pwd
import socket

from ansible_collections.hardened.vllm.plugins.module_utils._sockets import (
    NETLINK_SOCK_DIAG,
    PROC_NET_FILES,
    DumpInterrupted,
    NetlinkError,
    SocketError,
    build_diag_request,
    describe_socket,
    dump_finished,
    parse_diag_messages,
    parse_proc_net,
    sort_key,
)

CLONE_NEWNET = 0x40000000
RUN_NETNS = "/run/netns"
_RECV_SIZE = 65536  # netlink dump datagrams are at most 32 KiB
_DUMP_TRIES = 3
# sock_diag errors that mean "this kernel cannot dump that protocol/family": use /proc/net.
_UNSUPPORTED = (
    errno.ENOENT,
    errno.EOPNOTSUPP,
    errno.EINVAL,
    errno.EAFNOSUPPORT,
    errno.EPROTONOSUPPORT,
)


def _setns(fd):
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    import ctypes  # pylint: disable=import-outside-toplevel

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def own_netns_path(proc="/proc"):
    """The calling thread's namespace file (the process's on kernels without thread-self)."""
    if os.path.exists(f"{proc}/thread-self"):
        return f"{proc}/thread-self/ns/net"
    return f"{proc}/self/ns/net"


class NetnsSwitch:
    """Run a block inside the network namespace open as ``ns_fd`` (None: stay where we are).

    Sockets keep the namespace they were created in, so a netlink socket opened inside can be
    used after switching back. Failing to switch back is fatal: nothing may run in the wrong
    namespace.
    """

    def __init__(self, ns_fd):
        self.ns_fd = ns_fd
        self._own = None

    def __enter__(self):
        if self.ns_fd is None:
            return self
        self._own = os.open(own_netns_path(), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self.ns_fd)
        except OSError:
            os.close(self._own)
            raise
        return self

    def __exit__(self, *exc_info):
        if self.ns_fd is None:
            return False
        try:
            _setns(self._own)
        except OSError as exc:
            raise SocketError(
                f"cannot return to the module's own network namespace: {exc.strerror}"
            ) from None
        finally:
            os.close(self._own)
        return False


def read_text(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise SocketError(f"cannot read {path}: {exc.strerror}") from None


def read_bindv6only(proc="/proc"):
    """net.ipv6.bindv6only of the calling thread's namespace; 0 when IPv6 is absent."""
    path = f"{proc}/sys/net/ipv6/bindv6only"
    if not os.path.exists(path):
        return 0
    text = read_text(path).strip()
    if text not in ("0", "1"):
        raise SocketError(f"{path}: unexpected value {text!r}")
    return int(text)


def proc_net_records(net_dir, protocol, family):
    """Records from ``<net_dir>/tcp`` etc.; no file means the family is disabled: no sockets."""
    path = f"{net_dir}/{PROC_NET_FILES[(protocol, family)]}"
    if family == "ipv6" and not os.path.exists(path):
        return []
    return parse_proc_net(read_text(path), protocol, family, source=path)


def sock_diag_dump(nl_sock, protocol, family, seq):
    """All listening ``protocol``/``family`` sockets the netlink socket's namespace holds."""
    for _try in range(_DUMP_TRIES):
        records = []
        try:
            nl_sock.send(build_diag_request(family, protocol, seq))
            done = False
            while not done:
                data, _ancillary, flags, _address = nl_sock.recvmsg(_RECV_SIZE)
                if flags & socket.MSG_TRUNC:
                    raise SocketError(f"sock_diag: {protocol}/{family} answer truncated")
                if not data:
                    raise SocketError(
                        f"sock_diag: {protocol}/{family} dump ended without NLMSG_DONE"
                    )
                chunk, done = parse_diag_messages(data, protocol, seq)
                records.extend(chunk)
            return records
        except DumpInterrupted:
            if not dump_finished(data):
                _drain(nl_sock)
            seq += 1
        except OSError as exc:
            raise SocketError(f"sock_diag: {protocol}/{family} dump: {exc}") from None
    raise SocketError(
        f"sock_diag: {protocol}/{family} dump interrupted {_DUMP_TRIES} times by socket churn"
    )


def _drain(nl_sock):
    """Read the rest of an interrupted dump so that the next answer starts clean."""
    while True:
        data = nl_sock.recv(_RECV_SIZE)
        if not data or dump_finished(data):
            return


class NamespaceReader:
    """Reads one network namespace's listening sockets, by sock_diag or /proc/net.

    ``ns_fd`` is an open namespace file (None: the module's own namespace); ``proc_net`` a
    /proc/<pid>/net directory to read instead of entering (None: read /proc/thread-self/net from
    inside the namespace).
    """

    def __init__(self, ns_fd, method, proc="/proc", proc_net=None):
        self.ns_fd = ns_fd
        self.method = method
        self.proc = proc
        self.proc_net = proc_net
        self.nl_sock = None
        self.ifnames = {}
        self.bindv6only = 0
        self.warnings = []

    def open(self):
        """Enter the namespace once: open the netlink socket, read interface names and sysctl."""
        with NetnsSwitch(self.ns_fd):
            if self.method != "proc":
                try:
                    self.nl_sock = socket.socket(
                        socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG
                    )
                except OSError as exc:
                    if self.method == "sock_diag":
                        raise SocketError(
                            f"cannot open a NETLINK_SOCK_DIAG socket: {exc.strerror}"
                        ) from None
                    self.warnings.append(f"no sock_diag ({exc.strerror}): read /proc/net instead")
                else:
                    self.nl_sock.settimeout(10)
            try:
                self.ifnames = dict(socket.if_nameindex())
            except OSError:
                self.ifnames = {}
            self.bindv6only = read_bindv6only(self.proc)

    def close(self):
        if self.nl_sock is not None:
            self.nl_sock.close()
            self.nl_sock = None
        if self.ns_fd is not None:
            os.close(self.ns_fd)
            self.ns_fd = None

    def records(self, protocol, family, seq):
        if self.nl_sock is not None:
            try:
                return sock_diag_dump(self.nl_sock, protocol, family, seq)
            except NetlinkError as exc:
                if self.method == "sock_diag" or exc.errno not in _UNSUPPORTED:
                    raise
                self.warnings.append(
                    f"{exc}: read /proc/net instead (v6only from net.ipv6.bindv6only)"
                )
        if self.proc_net is not None:
            return proc_net_records(self.proc_net, protocol, family)
        # /proc/thread-self/net shows the namespace of the reading thread.
        with NetnsSwitch(self.ns_fd):
            return proc_net_records(f"{self.proc}/thread-self/net", protocol, family)


def scan_socket_owners(inodes, proc="/proc"):
    """Map each socket inode in ``inodes`` to the sorted pids holding it open."""
    owners = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            fd_dir = os.open(f"{proc}/{name}/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue  # exited, or not ours to read
        try:
            for fd in os.listdir(fd_dir):
                try:
                    target = os.readlink(fd, dir_fd=fd_dir)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode = int(target[8:-1])
                    if inode in inodes:
                        owners.setdefault(inode, []).append(int(name))
        except OSError:
            continue
        finally:
            os.close(fd_dir)
    for pids in owners.values():
        pids.sort()
    return owners


def read_process(pid, proc="/proc"):
    """``(name, cmdline)`` of a process; ``(None, [])`` when it exited meanwhile."""
    try:
        with open(f"{proc}/{pid}/comm", "rb") as handle:
            name = handle.read().rstrip(b"\n").decode("utf-8", "replace")
        with open(f"{proc}/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None, []
    return name, [arg.decode("utf-8", "replace") for arg in raw.split(b"\0")[:-1]]


def user_name(uid, cache):
    if uid not in cache:
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = None
    return cache[uid]


def netns_id(path):
    """Inode of a namespace file: the number in ``readlink /proc/<pid>/ns/net`` and ``lsns``."""
    return os.stat(path).st_ino


class Target:
    """One namespace to read: its id, the paths that lead into it and the names it has."""

    def __init__(self, ino, paths, names=(), required=True):
        self.ino = ino
        self.paths = list(paths)  # [] means the module's own namespace
        self.names = sorted(names)
        self.required = required  # asked for by name: not being able to read it is an error


def discover_namespaces(proc="/proc", run_netns=RUN_NETNS):
    """``{netns id: {"names": [...], "paths": [...]}}`` for every namespace that a name under
    /run/netns or a process refers to (named paths first, then one per process)."""
    found = {}
    candidates = []
    if os.path.isdir(run_netns):
        candidates += [(f"{run_netns}/{name}", name) for name in sorted(os.listdir(run_netns))]
    candidates += [(f"{proc}/{pid}/ns/net", None) for pid in os.listdir(proc) if pid.isdigit()]
    for path, name in candidates:
        try:
            ino = netns_id(path)
        except OSError:
            continue  # exited, unmounted, or not ours to see
        info = found.setdefault(ino, {"names": [], "paths": []})
        info["paths"].append(path)
        if name:
            info["names"].append(name)
    return found


def resolve_namespace(spec, proc="/proc", run_netns=RUN_NETNS):
    """``(netns id, path)`` for one item of the ``namespaces`` option: a pid, a name or a path."""
    if spec.isdigit():
        path = f"{proc}/{spec}/ns/net"
    elif spec.startswith("/"):
        path = spec
    elif "/" in spec or spec in (".", ".."):
        raise SocketError(
            f"namespaces: {spec!r} is neither 'all', a pid, a name under {run_netns} "
            "nor an absolute path"
        )
    else:
        path = f"{run_netns}/{spec}"
    try:
        return netns_id(path), path
    except OSError as exc:
        raise SocketError(f"namespaces: {spec!r}: cannot open {path}: {exc.strerror}") from None


def plan_targets(namespaces, own_ino, proc="/proc", run_netns=RUN_NETNS):
    """The namespaces to read for the ``namespaces`` option, the module's own first."""
    targets = {own_ino: Target(own_ino, [], required=False)}
    known = discover_namespaces(proc, run_netns) if namespaces else {}
    for spec in namespaces:
        if spec == "all":
            for ino, info in known.items():
                targets.setdefault(ino, Target(ino, info["paths"], info["names"], required=False))
            continue
        ino, path = resolve_namespace(spec, proc, run_netns)
        target = targets.setdefault(ino, Target(ino, [path], known.get(ino, {}).get("names", [])))
        target.required = target.required or ino != own_ino
    targets[own_ino].names = known.get(own_ino, {}).get("names", [])
    return list(targets.values())


def open_reader(target, method, proc="/proc"):
    """A NamespaceReader for the first path into ``target`` that works, or the reasons none did."""
    if not target.paths:
        reader = NamespaceReader(None, method, proc)
        reader.open()
        return reader, []
    problems = []
    for path in target.paths:
        try:
            ns_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        if os.fstat(ns_fd).st_ino != target.ino:
            os.close(ns_fd)  # the pid now belongs to a process in another namespace
            continue
        reader = NamespaceReader(ns_fd, method, proc)
        try:
            reader.open()
            return reader, []
        except OSError as exc:
            reader.close()
            problems.append(f"setns({path}): {exc.strerror}")
            if method == "auto" and exc.errno == errno.EPERM and path.endswith("/ns/net"):
                # No CAP_SYS_ADMIN: /proc/<pid>/net still shows that process's namespace.
                proc_net = f"{path[: -len('/ns/net')]}/net"
                reader = NamespaceReader(None, "proc", proc, proc_net)
                reader.open()
                reader.warnings.append(
                    f"netns {target.ino}: setns not permitted, read {proc_net}; "
                    "v6only taken from this namespace's net.ipv6.bindv6only"
                )
                return reader, []
    return None, problems or ["no path into it left"]


def host_netns(own_ino, proc="/proc"):
    """The host's netns is PID 1's; when PID 1 is not readable, assume the module's own."""
    try:
        return netns_id(f"{proc}/1/ns/net"), "pid1"
    except OSError:
        return own_ino, "assumed"


def read_target(target, method, protocols, proc, seq):
    """Described records of one namespace, and the reader's warnings (None: unreadable)."""
    reader, problems = open_reader(target, method, proc)
    if reader is None:
        message = f"netns {target.ino} {target.names or ''}: cannot enter: {'; '.join(problems)}"
        if target.required:
            raise SocketError(f"namespaces: {message}")
        return None, [f"skipped {message}"], 0
    entries = []
    try:
        for protocol in protocols:
            for family in ("ipv4", "ipv6"):
                for record in reader.records(protocol, family, seq):
                    entry = describe_socket(record, reader.bindv6only)
                    entry["interface"] = (
                        reader.ifnames.get(record["ifindex"]) if record["ifindex"] else None
                    )
                    entries.append(entry)
                seq += 1
    finally:
        reader.close()
    return entries, reader.warnings, reader.bindv6only


def gather(
    namespaces=(), protocols=("tcp", "udp"), method="auto", proc="/proc", run_netns=RUN_NETNS
):
    """``(entries, summary)``: listening sockets of the requested namespaces, with owners."""
    own_ino = netns_id(own_netns_path(proc))
    host_ino, host_source = host_netns(own_ino, proc)
    entries, warnings, read = [], [], []
    for number, target in enumerate(plan_targets(list(namespaces), own_ino, proc, run_netns)):
        found, notes, bindv6only = read_target(target, method, protocols, proc, seq=1 + 4 * number)
        warnings.extend(notes)
        if found is None:
            continue
        for entry in found:
            entry.update(
                netns=target.ino, netns_is_host=target.ino == host_ino, netns_names=target.names
            )
        entries.extend(found)
        read.append(
            {
                "id": target.ino,
                "is_host": target.ino == host_ino,
                "names": target.names,
                "bindv6only": bool(bindv6only),
            }
        )
    attach_owners(entries, proc)
    entries.sort(key=sort_key)
    return entries, summarise(entries, read, host_ino, host_source, warnings)


def attach_owners(entries, proc="/proc"):
    """Add user, pid, pids, process and cmdline; drop the raw ifindex."""
    owners = scan_socket_owners({entry["inode"] for entry in entries}, proc)
    users, processes = {}, {}
    for entry in entries:
        del entry["ifindex"]
        entry["user"] = user_name(entry["uid"], users)
        pids = owners.get(entry["inode"], [])
        entry["pids"] = pids
        entry["pid"] = pids[0] if pids else None
        if pids and pids[0] not in processes:
            processes[pids[0]] = read_process(pids[0], proc)
        entry["process"], entry["cmdline"] = processes[pids[0]] if pids else (None, [])


def summarise(entries, namespaces, host_ino, host_source, warnings):
    def count(key, value=True):
        return sum(1 for entry in entries if entry[key] == value)

    return {
        "total": len(entries),
        "tcp": count("protocol", "tcp"),
        "udp": count("protocol", "udp"),
        "wildcard": count("wildcard"),
        "dual_stack": count("dual_stack"),
        "loopback": count("loopback"),
        "without_process": count("pid", None),
        "sources": sorted({entry["source"] for entry in entries}),
        "host_netns": host_ino,
        "host_netns_source": host_source,
        "namespaces": namespaces,
        "warnings": warnings,
    }
