# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/gateway/files/pki.py: the CA, the certificates it issues and when it issues again.

The script runs as the role runs it (a subprocess, JSON in and out); the certificates are
checked with cryptography and in TLS handshakes by Python's ssl module (memory BIOs, so no
port is opened). Time-dependent cases (renewal) call the loaded module with a later `now`.
"""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "gateway" / "files" / "pki.py"
spec = importlib.util.spec_from_file_location("gateway_pki", SCRIPT)
pki = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pki)

SERVERS = {
    "vl-head": {"dns": ["vl-head"], "ips": ["10.231.9.11", "fd00::11"]},
    "vl-worker1": {"dns": ["vl-worker1"], "ips": ["10.231.9.12"]},
}
NOW = datetime.datetime.now(datetime.UTC)


def request(directory, **extra):
    return {
        "dir": str(directory),
        "ca_name": "hardened.vllm cluster CA",
        "ca_days": 3650,
        "days": 397,
        "renew_days": 30,
        "servers": SERVERS,
        "clients": {"vl-client": {}},
        **extra,
    }


def run_script(req):
    """(exit status, the JSON result or None, stderr) of one run of the script."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=json.dumps(req),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else None, proc.stderr


def fail(req):
    rc, out, err = run_script(req)
    assert out is None
    assert rc == 1
    assert "Traceback" not in err
    return err


def mtimes(directory):
    return {p.name: p.stat().st_mtime_ns for p in sorted(Path(directory).iterdir())}


def cert(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def ext(certificate, cls):
    return certificate.extensions.get_extension_for_class(cls)


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    """A CA directory from one first run, and that run's result (copied per test below)."""
    directory = tmp_path_factory.mktemp("pki") / "ca"
    rc, out, err = run_script(request(directory))
    assert rc == 0, err
    return directory, out


@pytest.fixture
def ca_dir(issued, tmp_path):
    """A private copy of the first run's directory (modes and mtimes kept)."""
    directory = tmp_path / "ca"
    shutil.copytree(issued[0], directory)
    return directory


def handshake(server_ctx, client_ctx, server_hostname):
    """A TLS handshake between two contexts over memory BIOs; raises what ssl raises."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _bio in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    done = {"server": False, "client": False}
    for _round in range(20):
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3 sends the client's certificate after the server's Finished: a round
            # trip of application data makes the server judge it.
            client.write(b"ping")
            s_in.write(c_out.read())
            assert server.read(4) == b"ping"
            return server.getpeercert()
    raise AssertionError("the handshake did not finish")


def server_context(directory, name, client_ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(directory / f"{name}.pem", directory / f"{name}.key")
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def client_context(ca_pem, cert_name=None, directory=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    ctx.load_verify_locations(ca_pem)
    if cert_name:
        ctx.load_cert_chain(directory / f"{cert_name}.pem", directory / f"{cert_name}.key")
    return ctx


# ---- the first run --------------------------------------------------------------------------


def test_first_run_makes_the_ca_and_every_certificate(issued):
    directory, out = issued
    assert out["changed"] is True
    assert out["issued"] == ["ca", "client-vl-client", "vl-head", "vl-worker1"]
    assert out["reasons"]["ca"] == "created"
    assert out["ca"] == str(directory / "ca.pem")
    ca = cert(directory / "ca.pem")
    assert out["ca_fingerprint"] == ca.fingerprint(hashes.SHA256()).hex()
    assert out["servers"]["vl-head"] == {
        "cert": str(directory / "vl-head.pem"),
        "key": str(directory / "vl-head.key"),
        "not_after": cert(directory / "vl-head.pem").not_valid_after_utc.isoformat(),
    }
    assert out["clients"]["vl-client"]["cert"] == str(directory / "client-vl-client.pem")
    assert set(out["servers"]) == set(SERVERS)


def test_keys_are_0600_certificates_0644_and_the_directory_0700(issued):
    directory = issued[0]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        want = 0o600 if path.suffix == ".key" else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == want, path.name
    assert sorted(p.name for p in directory.iterdir()) == [
        "ca.key",
        "ca.pem",
        "client-vl-client.key",
        "client-vl-client.pem",
        "vl-head.key",
        "vl-head.pem",
        "vl-worker1.key",
        "vl-worker1.pem",
    ]


def test_the_ca_is_a_p256_ca_limited_to_signing_certificates(issued):
    ca = cert(issued[0] / "ca.pem")
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    assert ca.subject.rfc4514_string() == "CN=hardened.vllm cluster CA"
    assert ca.issuer == ca.subject
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    ca.verify_directly_issued_by(ca)


def test_a_server_certificate_names_exactly_the_node_and_serves_tls_only(issued):
    directory = issued[0]
    ca, leaf = cert(directory / "ca.pem"), cert(directory / "vl-head.pem")
    leaf.verify_directly_issued_by(ca)
    sans = ext(leaf, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["vl-head"]
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.231.9.11"),
        ipaddress.ip_address("fd00::11"),
    }
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ku = ext(leaf, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    ext(leaf, x509.SubjectKeyIdentifier)
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    assert datetime.timedelta(minutes=4) < NOW - start < datetime.timedelta(minutes=6)
    assert end - start == datetime.timedelta(days=397, minutes=5)
    assert leaf.serial_number != cert(directory / "vl-worker1.pem").serial_number


@pytest.mark.parametrize("server_hostname", ["10.231.9.11", "fd00::11", "vl-head"])
def test_a_tls_client_pinning_ca_pem_verifies_the_gateway(issued, server_hostname):
    directory = issued[0]
    ctx = client_context(directory / "ca.pem")
    handshake(server_context(directory, "vl-head"), ctx, server_hostname)


@pytest.mark.parametrize("server_hostname", ["10.231.9.12", "vl-worker1"])
def test_a_name_the_certificate_lacks_fails_verification(issued, server_hostname):
    directory = issued[0]
    ctx = client_context(directory / "ca.pem")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(server_context(directory, "vl-head"), ctx, server_hostname)


def test_a_client_certificate_is_for_client_auth_and_passes_mutual_tls(issued):
    directory = issued[0]
    client = cert(directory / "client-vl-client.pem")
    client.verify_directly_issued_by(cert(directory / "ca.pem"))
    assert client.subject.rfc4514_string() == "CN=vl-client"
    assert list(ext(client, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        ext(client, x509.SubjectAlternativeName)
    server = server_context(directory, "vl-head", client_ca=directory / "ca.pem")
    ctx = client_context(directory / "ca.pem", "client-vl-client", directory)
    peer = handshake(server, ctx, "10.231.9.11")
    assert dict(x[0] for x in peer["subject"]) == {"commonName": "vl-client"}


def test_a_client_certificate_cannot_serve_tls(issued):
    directory = issued[0]
    ctx = client_context(directory / "ca.pem")
    with pytest.raises(ssl.SSLCertVerificationError, match="purpose"):
        handshake(server_context(directory, "client-vl-client"), ctx, "vl-client")


# ---- later runs -----------------------------------------------------------------------------


def test_a_second_run_changes_nothing(ca_dir, issued):
    before = mtimes(ca_dir)
    rc, out, err = run_script(request(ca_dir))
    assert rc == 0, err
    assert out["changed"] is False
    assert out["issued"] == [] and out["reasons"] == {} and out["modes_fixed"] == []
    assert out["ca_fingerprint"] == issued[1]["ca_fingerprint"]
    assert mtimes(ca_dir) == before
    assert out["servers"]["vl-head"]["not_after"] == issued[1]["servers"]["vl-head"]["not_after"]


def test_the_same_names_written_differently_change_nothing(ca_dir):
    servers = {
        **SERVERS,
        "vl-head": {"dns": ["VL-Head", "vl-head."], "ips": ["fd00:0:0::11", "10.231.9.11"]},
    }
    before = mtimes(ca_dir)
    rc, out, err = run_script(request(ca_dir, servers=servers))
    assert rc == 0, err
    assert out["changed"] is False
    assert mtimes(ca_dir) == before


def test_a_changed_san_list_issues_only_that_node_again(ca_dir, issued):
    before = mtimes(ca_dir)
    servers = {**SERVERS, "vl-worker1": {"dns": ["vl-worker1"], "ips": ["10.231.9.13"]}}
    rc, out, err = run_script(request(ca_dir, servers=servers))
    assert rc == 0, err
    assert out["changed"] is True
    assert out["issued"] == ["vl-worker1"]
    assert out["reasons"]["vl-worker1"] == (
        "the names changed (added: 10.231.9.13; dropped: 10.231.9.12)"
    )
    after = mtimes(ca_dir)
    assert {n for n in after if after[n] != before[n]} == {"vl-worker1.key", "vl-worker1.pem"}
    assert out["ca_fingerprint"] == issued[1]["ca_fingerprint"]
    ctx = client_context(ca_dir / "ca.pem")
    handshake(server_context(ca_dir, "vl-worker1"), ctx, "10.231.9.13")


def test_a_new_node_gets_a_certificate_and_the_rest_stay(ca_dir):
    before = mtimes(ca_dir)
    servers = {**SERVERS, "vl-worker2": {"ips": ["10.231.9.14"]}}
    rc, out, err = run_script(request(ca_dir, servers=servers))
    assert rc == 0, err
    assert out["issued"] == ["vl-worker2"]
    assert out["reasons"] == {"vl-worker2": "vl-worker2.pem is missing"}
    assert {n: t for n, t in mtimes(ca_dir).items() if n in before} == before


def test_broken_or_foreign_certificates_are_issued_again(ca_dir, tmp_path):
    other = tmp_path / "other"
    rc, out, err = run_script(request(other, clients={}))
    assert rc == 0, err
    shutil.copy(other / "vl-head.pem", ca_dir / "vl-head.pem")  # another CA's
    shutil.copy(other / "vl-head.key", ca_dir / "vl-head.key")
    shutil.copy(ca_dir / "vl-head.key", ca_dir / "vl-worker1.key")  # not its key
    (ca_dir / "client-vl-client.pem").write_text("garbage\n")
    (ca_dir / "client-vl-client.key").chmod(0o644)
    rc, out, err = run_script(request(ca_dir))
    assert rc == 0, err
    assert out["reasons"] == {
        "client-vl-client": "client-vl-client.pem is not a readable certificate",
        "vl-head": "not signed by the current CA",
        "vl-worker1": "the certificate does not match its key",
    }
    for path in ca_dir.glob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    ctx = client_context(ca_dir / "ca.pem")
    handshake(server_context(ca_dir, "vl-head"), ctx, "vl-head")


def test_a_key_readable_by_others_is_made_0600_without_a_new_certificate(ca_dir):
    (ca_dir / "vl-head.key").chmod(0o644)
    before = mtimes(ca_dir)
    rc, out, err = run_script(request(ca_dir))
    assert rc == 0, err
    assert out["changed"] is True and out["issued"] == []
    assert out["modes_fixed"] == [str(ca_dir / "vl-head.key")]
    assert stat.S_IMODE((ca_dir / "vl-head.key").stat().st_mode) == 0o600
    assert mtimes(ca_dir) == before


def test_a_certificate_with_another_usage_is_issued_again(ca_dir):
    ca_key, ca_cert = pki.load_ca(str(ca_dir / "ca.key"), str(ca_dir / "ca.pem"))
    sans = pki.expected_sans(pki.check_request(request(ca_dir))["servers"]["vl-head"])
    key, wrong = pki.issue(ca_key, ca_cert, "vl-head", sans, pki.CLIENT_AUTH, 397, NOW)
    pki.write_atomic(str(ca_dir / "vl-head.key"), pki.key_pem(key), 0o600)
    pki.write_atomic(str(ca_dir / "vl-head.pem"), pki.cert_pem(wrong), 0o644)
    out = pki.run(pki.check_request(request(ca_dir)))
    assert out["reasons"] == {"vl-head": "its extended key usage is not only serverAuth"}


def test_a_certificate_close_to_expiry_is_renewed_and_the_ca_kept(ca_dir, issued):
    later = NOW + datetime.timedelta(days=397 - 30 + 1)
    out = pki.run(pki.check_request(request(ca_dir)), now=later)
    assert out["issued"] == ["client-vl-client", "vl-head", "vl-worker1"]
    assert out["reasons"]["vl-head"].endswith("(within renew_days)")
    assert out["ca_fingerprint"] == issued[1]["ca_fingerprint"]
    leaf = cert(ca_dir / "vl-head.pem")
    assert leaf.not_valid_after_utc > later + datetime.timedelta(days=396)


def test_an_expiring_ca_is_renewed_with_its_key_and_everything_issued_again(ca_dir, issued):
    old = cert(ca_dir / "ca.pem")
    later = NOW + datetime.timedelta(days=3650 - 10)
    out = pki.run(pki.check_request(request(ca_dir)), now=later)
    assert out["changed"] is True
    assert out["issued"] == ["ca", "client-vl-client", "vl-head", "vl-worker1"]
    assert out["reasons"]["ca"].startswith("renewed:")
    assert "give clients the new ca.pem" in out["reasons"]["ca"]
    assert out["reasons"]["vl-head"] == "the CA was renewed"
    new = cert(ca_dir / "ca.pem")
    assert out["ca_fingerprint"] != issued[1]["ca_fingerprint"]
    assert new.subject == old.subject
    assert new.public_key().public_numbers() == old.public_key().public_numbers()
    assert new.not_valid_after_utc > later + datetime.timedelta(days=3649)
    cert(ca_dir / "vl-head.pem").verify_directly_issued_by(new)
    # a client still pinning the old ca.pem verifies the new certificates (same key and name)
    cert(ca_dir / "vl-head.pem").verify_directly_issued_by(old)


# ---- what it refuses ------------------------------------------------------------------------


def test_a_ca_key_that_does_not_match_ca_pem_stops_the_run(ca_dir):
    other = ec.generate_private_key(ec.SECP256R1())
    pki.write_atomic(str(ca_dir / "ca.key"), pki.key_pem(other), 0o600)
    before = mtimes(ca_dir)
    err = fail(request(ca_dir))
    assert f"{ca_dir / 'ca.key'} does not match {ca_dir / 'ca.pem'}" in err
    assert "Restore the pair from a backup, or move both away to make a new CA" in err
    assert mtimes(ca_dir) == before


def test_a_ca_pem_that_is_not_a_ca_stops_the_run(ca_dir):
    shutil.copy(ca_dir / "vl-head.pem", ca_dir / "ca.pem")
    shutil.copy(ca_dir / "vl-head.key", ca_dir / "ca.key")
    with pytest.raises(pki.PkiError, match="is not a CA certificate") as err:
        pki.run(pki.check_request(request(ca_dir)))
    assert str(err.value).startswith(f"{ca_dir / 'ca.pem'} is not a CA certificate")


@pytest.mark.parametrize("missing", ["ca.key", "ca.pem"])
def test_half_a_ca_stops_the_run(ca_dir, missing):
    (ca_dir / missing).unlink()
    with pytest.raises(pki.PkiError, match="clients may pin it") as err:
        pki.run(pki.check_request(request(ca_dir)))
    assert f"{ca_dir / missing} does not" in str(err.value)
    assert not (ca_dir / missing).exists()


def test_bad_names_and_addresses_are_all_named_in_one_failure(tmp_path):
    servers = {
        "../etc": {"ips": ["10.0.0.1"]},
        "a b": {"ips": ["10.0.0.1"]},
        "x" * 65: {"ips": ["10.0.0.1"]},
        "vl-head": {"dns": ["vl-head"], "ips": ["10.231.9.256", "fe80::1%eth0"]},
        "ca": {"ips": ["10.0.0.2"]},
    }
    err = fail(request(tmp_path / "ca", servers=servers))
    assert err.startswith("pki.py: the request is not valid:")
    for name in ("'../etc'", "'a b'", f"'{'x' * 65}'"):
        assert f"server {name}: names become file names" in err
    assert "server 'vl-head': IP address '10.231.9.256' is not an IPv4 or IPv6 address" in err
    assert "server 'vl-head': IP address 'fe80::1%eth0' has a zone" in err
    assert "these would share files: ca, ca" in err
    assert not (tmp_path / "ca").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"days": 30}, "renew_days (30) must be less than days (30)"),
        ({"renew_days": 0}, "renew_days must be a positive whole number of days, got 0"),
        ({"dir": "relative/ca"}, "dir must be an absolute path, got 'relative/ca'"),
        ({"servers": {}}, "servers must be a non-empty object"),
        ({"servers": {"n": {"dns": ["-bad-"]}}}, "server 'n': DNS name '-bad-' is not a DNS"),
        ({"servers": {"n": {}}}, "server 'n': needs at least one DNS name or IP address"),
        ({"servers": {"n": {"ip": ["10.0.0.1"]}}}, "server 'n': unknown field 'ip'"),
        ({"clients": {"bad/name": {}}}, "client 'bad/name': names become file names"),
        ({"clients": {"c": {"dns": ["x"]}}}, "client 'c': takes no settings"),
        (
            {"clients": {"x": {}}, "servers": {"client-x": {"ips": ["10.0.0.1"]}}},
            "these would share files: client-x, client-x",
        ),
        ({"servers": {"A": {"ips": ["::1"]}, "a": {"ips": ["::1"]}}}, "share files: A, a"),
        ({"colour": "blue"}, "unknown field 'colour'"),
    ],
)
def test_the_request_is_checked(tmp_path, change, message):
    with pytest.raises(pki.PkiError, match="the request is not valid") as err:
        pki.check_request(request(tmp_path / "ca", **change))
    assert message in str(err.value)


def test_stdin_that_is_not_json_fails_cleanly(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], input="{", capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("pki.py: stdin is not JSON")
    assert "Traceback" not in proc.stderr


def test_keys_are_never_world_readable_even_while_written(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(dst).name, stat.S_IMODE(os.stat(src).st_mode)))
        real_replace(src, dst)

    monkeypatch.setattr(pki.os, "replace", spy)
    old = os.umask(0)
    try:
        pki.run(pki.check_request(request(tmp_path / "ca")))
    finally:
        os.umask(old)
    assert seen and all(mode == 0o600 for name, mode in seen if name.endswith(".key"))
    assert not [p for p in (tmp_path / "ca").iterdir() if p.name.startswith(".")]
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700


def test_the_key_files_hold_unencrypted_p256_keys(issued):
    key = serialization.load_pem_private_key((issued[0] / "vl-head.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
