# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/vllm/files/stage_server.py: what it refuses to start with, whom it answers, what it
serves (a real server on loopback), and that it stops by itself."""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import socket
import threading
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "vllm" / "files" / "stage_server.py"
spec = importlib.util.spec_from_file_location("vllm_stage_server", SCRIPT)
st = importlib.util.module_from_spec(spec)
spec.loader.exec_module(st)


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "wh-0123456789ab.tar"
    path.write_bytes(b"x" * 3_000_000)
    return path


def args(*argv):
    return st.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bind", "0.0.0.0", "--allow", "10.0.0.12"], "wildcard"),
        (["--bind", "::", "--allow", "10.0.0.12"], "wildcard"),
        (["--bind", "eth0", "--allow", "10.0.0.12"], "not an IP address"),
        (["--bind", "10.0.0.11"], "at least one --allow"),
        (["--bind", "10.0.0.11", "--allow", "10.0.0.300"], "--allow"),
    ],
)
def test_refuses(archive, argv, message):
    with pytest.raises(st.StageError, match=message):
        st.check(args(*argv, "--port", "29590", f"a={archive}"))


def test_refuses_missing_file_and_bad_name(tmp_path, archive):
    base = ["--bind", "10.0.0.11", "--port", "29590", "--allow", "10.0.0.12"]
    with pytest.raises(st.StageError, match="existing regular FILE"):
        st.check(args(*base, f"a={tmp_path / 'absent.tar'}"))
    with pytest.raises(st.StageError, match="existing regular FILE"):
        st.check(args(*base, f"a={tmp_path}"))
    with pytest.raises(st.StageError, match="NAME=FILE"):
        st.check(args(*base, f"../a={archive}"))


def test_allowed():
    allow = [st.ipaddress.ip_network("10.0.0.12/32"), st.ipaddress.ip_network("fd00::/64")]
    assert st.allowed("10.0.0.12", allow)
    assert st.allowed("::ffff:10.0.0.12", allow)
    assert st.allowed("fd00::12", allow)
    assert st.allowed("fe80::1%eth0", allow) is False
    assert st.allowed("10.0.0.13", allow) is False
    assert st.allowed("not-an-address", allow) is False


def test_resolve():
    files = {"wh.tar": "/srv/wh.tar"}
    assert st.resolve(files, "/wh.tar") == "/srv/wh.tar"
    assert st.resolve(files, "/wh.tar?x=1") == "/srv/wh.tar"
    assert st.resolve(files, "/%77h.tar") == "/srv/wh.tar"
    for path in ("/", "/other", "/wh.tar/x", "/../wh.tar", "wh.tar", "//wh.tar"):
        assert st.resolve(files, path) is None, path


def test_resolve_names_with_parts():
    """A model's files are served by their names below the model directory, looked up whole."""
    files = {
        "original/params.json": "/srv/m/original/params.json",
        "model.safetensors": "/srv/m/model.safetensors",
    }
    assert st.resolve(files, "/original/params.json") == "/srv/m/original/params.json"
    assert st.resolve(files, "/original%2Fparams.json") == "/srv/m/original/params.json"
    for path in (
        "/original",
        "/original/",
        "/original/../model.safetensors",
        "/./model.safetensors",
    ):
        assert st.resolve(files, path) is None, path


def test_names_with_parts_are_checked(archive):
    base = ["--bind", "10.0.0.11", "--port", "29590", "--allow", "10.0.0.12"]
    assert st.check(args(*base, f"original/a+b.json={archive}"))[2] == {
        "original/a+b.json": str(archive)
    }
    for bad in ("original/../a", "original//a", "/a", "a/", ".git/config", "a/.hidden"):
        with pytest.raises(st.StageError, match="NAME=FILE"):
            st.check(args(*base, f"{bad}={archive}"))


def serve(archive, allow):
    bind, nets, files = st.check(
        args("--bind", "127.0.0.1", "--port", "0", "--allow", allow, f"wh.tar={archive}")
    )
    httpd = st.server(bind, 0, nets, files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


def get(port, method, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_serves_the_file_to_an_allowed_peer(archive):
    httpd, thread = serve(archive, "127.0.0.1")
    try:
        port = httpd.server_address[1]
        status, headers, body = get(port, "GET", "/wh.tar")
        assert status == 200 and headers["Content-Length"] == str(archive.stat().st_size)
        assert hashlib.sha256(body).digest() == hashlib.sha256(archive.read_bytes()).digest()
        status, headers, body = get(port, "HEAD", "/wh.tar")
        assert (status, body) == (200, b"") and headers["Content-Length"] == "3000000"
        assert get(port, "GET", "/")[0] == 404
        assert get(port, "GET", "/" + archive.parent.name)[0] == 404
    finally:
        httpd.shutdown()
        thread.join(5)


def test_disconnects_a_client_that_is_not_allowed(archive):
    httpd, thread = serve(archive, "10.0.0.12")
    try:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            get(httpd.server_address[1], "GET", "/wh.tar")
    finally:
        httpd.shutdown()
        thread.join(5)


def test_main_stops_after_max_seconds(archive):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["--bind", "127.0.0.1", "--port", str(port), "--allow", "127.0.0.1"]
    start = time.monotonic()
    st.main([*argv, "--max-seconds", "0.5", f"wh.tar={archive}"])
    assert time.monotonic() - start < 5
