# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_sockets: decoding recorded /proc/net files and sock_diag answers, address classification.

The fixtures were recorded on this project's machine by fixtures/proc_net/record.py in a fresh
network namespace; manifest.json lists the sockets that were open at the time.
"""

from __future__ import annotations

import ipaddress
import json
import re
import struct
from pathlib import Path

import pytest

from ansible_collections.hardened.vllm.plugins.module_utils import _sockets as s

FIXTURES = Path(__file__).parents[2] / "fixtures" / "proc_net"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
BYTEORDER = MANIFEST["byteorder"]
KINDS = sorted(s.PROC_NET_FILES)  # (protocol, family)


def proc_records(protocol, family):
    name = s.PROC_NET_FILES[(protocol, family)]
    return s.parse_proc_net((FIXTURES / name).read_text(), protocol, family, name, BYTEORDER)


def diag_bytes(protocol, family):
    name = f"diag_{protocol}_{family}.bin"
    return (FIXTURES / name).read_bytes(), MANIFEST["netlink_seq"][name]


def diag_records(protocol, family):
    data, seq = diag_bytes(protocol, family)
    records, done = s.parse_diag_messages(data, protocol, seq)
    assert done
    return records


def opened(protocol, family):
    """(address, port) of the listening sockets record.py opened, as the kernel prints them."""
    return {
        (sock["address"], sock["port"])
        for sock in MANIFEST["sockets"]
        if sock["protocol"] == protocol and sock["family"] == family
    }


@pytest.mark.parametrize(
    ("text", "byteorder", "expected"),
    [
        ("0100007F:1F90", "little", ("127.0.0.1", 8080)),
        ("7F000001:0050", "big", ("127.0.0.1", 80)),
        ("00000000:A476", "little", ("0.0.0.0", 42102)),
        ("0000000000000000FFFF00000100007F:A47A", "little", ("::ffff:127.0.0.1", 42106)),
        ("00000000000000000000000001000000:0016", "little", ("::1", 22)),
        ("00000000000000000000000000000001:0016", "big", ("::1", 22)),
        ("B80D0120000000000000000001000000:01BB", "little", ("2001:db8::1", 443)),
    ],
)
def test_decode_proc_address(text, byteorder, expected):
    assert s.decode_proc_address(text, byteorder) == expected


@pytest.mark.parametrize("text", ["0100007F", "0100007G:0050", "01007F:0050", "0100007F:"])
def test_decode_proc_address_rejects_garbage(text):
    with pytest.raises(s.SocketError, match="cannot decode address"):
        s.decode_proc_address(text, "little")


@pytest.mark.parametrize(("protocol", "family"), KINDS)
def test_proc_net_fixture_yields_exactly_the_opened_sockets(protocol, family):
    records = proc_records(protocol, family)
    assert {(r["address"], r["port"]) for r in records} == opened(protocol, family)
    assert all(r["uid"] == MANIFEST["uid"] and r["inode"] > 0 for r in records)
    assert all(
        r["v6only"] is None and r["ifindex"] is None and r["source"] == "proc" for r in records
    )


def test_proc_net_skips_established_and_connected_sockets():
    tcp_text = (FIXTURES / "tcp").read_text()
    udp_text = (FIXTURES / "udp").read_text()
    # The recorded files do contain the non-listening sockets ...
    assert " 01 " in tcp_text
    assert " 01 " in udp_text
    # ... and they are not reported.
    ports = {r["port"] for r in proc_records("tcp", "ipv4") + proc_records("udp", "ipv4")}
    assert not ports & set(MANIFEST["not_listening"]["udp_connected"])
    assert len(proc_records("tcp", "ipv4")) == len(opened("tcp", "ipv4"))


def test_proc_net_names_file_and_line_on_garbage():
    text = (FIXTURES / "tcp").read_text().splitlines()
    text[2] = "   1: 00000000:A476 00000000:0000 0A truncated"
    with pytest.raises(s.SocketError, match=r"^/proc/net/tcp: line 3: cannot parse"):
        s.parse_proc_net("\n".join(text), "tcp", "ipv4", "/proc/net/tcp", BYTEORDER)


@pytest.mark.parametrize(("protocol", "family"), KINDS)
def test_sock_diag_fixture_yields_exactly_the_opened_sockets(protocol, family):
    records = diag_records(protocol, family)
    assert {(r["address"], r["port"]) for r in records} == opened(protocol, family)
    expected_v6only = {
        (sock["address"], sock["port"]): sock["v6only"]
        for sock in MANIFEST["sockets"]
        if sock["protocol"] == protocol and sock["family"] == family
    }
    for record in records:
        want = expected_v6only[(record["address"], record["port"])]
        if family == "ipv6":
            # the mapped bind is recorded with v6only false: the kernel forbids v6only there
            assert record["v6only"] is bool(want)
        else:
            assert record["v6only"] is None


@pytest.mark.parametrize(("protocol", "family"), KINDS)
def test_sock_diag_and_proc_agree_on_inodes(protocol, family):
    # Both were recorded at the same moment from the same sockets.
    diag = {(r["address"], r["port"], r["inode"], r["uid"]) for r in diag_records(protocol, family)}
    proc = {(r["address"], r["port"], r["inode"], r["uid"]) for r in proc_records(protocol, family)}
    assert diag == proc


def test_sock_diag_reports_bound_device():
    by_port = {r["port"]: r["ifindex"] for r in diag_records("tcp", "ipv4")}
    bound = {sock["port"] for sock in MANIFEST["sockets"] if sock["device"]}
    assert bound == {42107}
    assert by_port[42107] == 1  # lo
    assert all(index == 0 for port, index in by_port.items() if port not in bound)


def described(source, bindv6only=0):
    records = [
        r for kind in KINDS for r in (diag_records if source == "diag" else proc_records)(*kind)
    ]
    return {(r["protocol"], r["port"]): s.describe_socket(r, bindv6only) for r in records}


def test_dual_stack_is_exact_from_sock_diag():
    entries = described("diag", bindv6only=1)  # the sysctl must not matter here
    assert {key for key, e in entries.items() if e["dual_stack"]} == {
        ("tcp", 42105),
        ("udp", 42113),
    }
    assert entries[("tcp", 42104)]["v6only"] is True
    assert entries[("tcp", 42104)]["v6only_source"] == "socket"
    assert entries[("tcp", 42102)]["v6only"] is None
    assert entries[("tcp", 42102)]["v6only_source"] is None


def test_proc_net_can_only_assume_the_sysctl_default():
    # The documented limitation: /proc/net has no per-socket IPV6_V6ONLY.
    with_default_0 = described("proc", bindv6only=0)
    assert {k for k, e in with_default_0.items() if e["dual_stack"]} == {
        ("tcp", 42104),  # really v6only: misreported, flagged by v6only_source
        ("tcp", 42105),
        ("udp", 42113),
        ("udp", 42114),  # really v6only
    }
    assert {e["v6only_source"] for e in with_default_0.values() if e["family"] == "ipv6"} == {
        "sysctl"
    }
    with_default_1 = described("proc", bindv6only=1)
    assert not any(e["dual_stack"] for e in with_default_1.values())


def test_mapped_bind_is_ipv4_loopback_and_not_dual_stack():
    entry = described("diag")[("tcp", 42106)]
    assert entry["address"] == "::ffff:127.0.0.1"
    assert entry["family"] == "ipv6"
    assert entry["mapped_ipv4"] == "127.0.0.1"
    assert entry["loopback"] is True
    assert entry["wildcard"] is False
    assert entry["dual_stack"] is False


def ss_view(entry):
    """How `ss -ltnuH` prints the local address of a described socket."""
    if entry["dual_stack"]:
        address = "*"
    elif entry["family"] == "ipv6":
        address = f"[{entry['address']}]"
    else:
        address = entry["address"]
    if entry["ifindex"]:
        address += "%lo"
    return entry["protocol"], f"{address}:{entry['port']}"


def test_sock_diag_agrees_with_recorded_ss_including_dual_stack():
    recorded = {
        tuple(line.split()[i] for i in (0, 4))
        for line in (FIXTURES / "ss-ltnuH.txt").read_text().splitlines()
    }
    ours = {ss_view(e) for e in described("diag").values()}
    assert ours == recorded
    assert ("tcp", "*:42105") in recorded  # ss's own dual-stack verdict


def test_diag_request_layout():
    request = s.build_diag_request("ipv6", "udp", 7)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", request)
    assert (length, kind, flags, seq, pid) == (len(request), 20, 0x301, 7, 0)
    family, protocol, ext, pad, states = struct.unpack_from("=BBBBI", request, 16)
    assert (family, protocol, ext, pad, states) == (10, 17, 0, 0, 1 << 7)
    assert len(request) == 16 + 56
    assert struct.unpack_from("=I", s.build_diag_request("ipv4", "tcp", 1), 20)[0] == 1 << 10


def test_diag_dump_split_over_datagrams_is_not_done_until_nlmsg_done():
    data, seq = diag_bytes("tcp", "ipv6")
    first_length = struct.unpack_from("=I", data)[0]
    records, done = s.parse_diag_messages(data[:first_length], "tcp", seq)
    assert (len(records), done) == (1, False)


def test_diag_truncated_message_is_an_error():
    data, seq = diag_bytes("tcp", "ipv4")
    with pytest.raises(s.SocketError, match="truncated netlink message"):
        s.parse_diag_messages(data[:100], "tcp", seq)


def test_diag_answer_to_another_request_is_an_error():
    data, seq = diag_bytes("tcp", "ipv4")
    with pytest.raises(s.SocketError, match=f"answer for request {seq}, expected {seq + 1}"):
        s.parse_diag_messages(data, "tcp", seq + 1)


def test_diag_interrupted_dump_is_flagged():
    data, seq = diag_bytes("udp", "ipv4")
    flagged = bytearray(data)
    flags = struct.unpack_from("=H", flagged, 6)[0]
    struct.pack_into("=H", flagged, 6, flags | s.NLM_F_DUMP_INTR)
    with pytest.raises(s.DumpInterrupted):
        s.parse_diag_messages(bytes(flagged), "udp", seq)


def test_dump_finished_reads_headers_only():
    data, _seq = diag_bytes("udp", "ipv6")
    last = len(data) - 20  # NLMSG_DONE: 16-byte header + errno
    assert s.dump_finished(data) is True
    assert s.dump_finished(data[:last]) is False
    assert s.dump_finished(data[last:]) is True


@pytest.mark.parametrize("kind", [s.NLMSG_ERROR, s.NLMSG_DONE])
def test_diag_kernel_error_carries_errno(kind):
    message = struct.pack("=IHHIIi", 20, kind, 0, 5, 0, -2)
    with pytest.raises(s.NetlinkError, match="errno 2") as caught:
        s.parse_diag_messages(message, "udp", 5)
    assert caught.value.errno == 2


def test_diag_malformed_attribute_is_an_error():
    data, seq = diag_bytes("tcp", "ipv6")
    length = struct.unpack_from("=I", data)[0]
    first = bytearray(data[:length])
    struct.pack_into("=H", first, 16 + 72, 2)  # first rtattr claims 2 bytes: less than its header
    with pytest.raises(s.SocketError, match="malformed attribute"):
        s.parse_diag_messages(bytes(first), "tcp", seq)


def test_diag_drops_records_in_other_states():
    data, seq = diag_bytes("tcp", "ipv4")
    changed = bytearray(data)
    changed[16 + 1] = 1  # first message's idiag_state: ESTABLISHED
    records, _done = s.parse_diag_messages(bytes(changed), "tcp", seq)
    assert len(records) == len(opened("tcp", "ipv4")) - 1


@pytest.mark.parametrize(
    ("address", "wildcard", "loopback", "mapped"),
    [
        ("0.0.0.0", True, False, None),
        ("::", True, False, None),
        ("::ffff:0.0.0.0", True, False, "0.0.0.0"),
        ("127.0.0.53", False, True, None),
        ("::1", False, True, None),
        ("::ffff:127.0.0.1", False, True, "127.0.0.1"),
        ("10.89.0.2", False, False, None),
        ("::ffff:10.89.0.2", False, False, "10.89.0.2"),
        ("fe80::1", False, False, None),
        ("2001:db8::2", False, False, None),
    ],
)
def test_classify_address(address, wildcard, loopback, mapped):
    assert s.classify_address(address) == {
        "wildcard": wildcard,
        "loopback": loopback,
        "mapped_ipv4": mapped,
    }


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:10.89.0.2", "10.89.0.2"),
        ("::ffff:0.0.0.0", "0.0.0.0"),
        ("10.89.0.2", "10.89.0.2"),
        ("2001:db8::2", "2001:db8::2"),
        ("::", "::"),
    ],
)
def test_unmapped_is_the_ipv4_address_a_mapped_one_stands_for(address, expected):
    assert str(s.unmapped(ipaddress.ip_address(address))) == expected


def test_classify_address_rejects_garbage():
    with pytest.raises(s.SocketError, match=re.escape("cannot classify address '10.0.0.256'")):
        s.classify_address("10.0.0.256")


def test_specific_ipv6_address_is_never_dual_stack():
    record = {
        "protocol": "tcp",
        "family": "ipv6",
        "address": "2001:db8::2",
        "port": 1,
        "v6only": False,
    }
    assert s.describe_socket(record, 0)["dual_stack"] is False


def test_sort_key_orders_by_namespace_protocol_port():
    entries = [
        {
            "netns": 2,
            "protocol": "tcp",
            "port": 1,
            "family": "ipv4",
            "address": "0.0.0.0",
            "inode": 1,
        },
        {
            "netns": 1,
            "protocol": "udp",
            "port": 1,
            "family": "ipv4",
            "address": "0.0.0.0",
            "inode": 2,
        },
        {"netns": 1, "protocol": "tcp", "port": 80, "family": "ipv6", "address": "::", "inode": 3},
        {
            "netns": 1,
            "protocol": "tcp",
            "port": 80,
            "family": "ipv4",
            "address": "0.0.0.0",
            "inode": 4,
        },
    ]
    assert [e["inode"] for e in sorted(entries, key=s.sort_key)] == [4, 3, 2, 1]
