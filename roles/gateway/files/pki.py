# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the API gateway's private CA and its certificates, on the controller.

    python3 pki.py < request.json

The request (JSON on stdin):

    {"dir": "/abs/path/ca",                 # created 0700 when missing
     "ca_name": "hardened.vllm cluster CA",  # the CA's common name (only when it is made)
     "ca_days": 3650, "days": 397, "renew_days": 30,
     "servers": {"vl-head": {"dns": ["vl-head"], "ips": ["10.231.9.11", "fd00::11"]}},
     "clients": {"vl-client": {}}}           # optional: client certificates for mutual TLS

DIR holds ca.key/ca.pem (EC P-256, made once and reused), <server>.key/<server>.pem
(serverAuth, the DNS names and IP addresses as SANs) and client-<client>.key/.pem
(clientAuth, CN = the name). Names become file names, so they must match
[A-Za-z0-9][A-Za-z0-9._-]{0,63}. DNS names are kept in lower case and IP addresses in their
canonical form (fd00:0::11 is fd00::11), which is also how they are compared.

A certificate is issued again only when it is missing or unreadable, not signed by the CA,
names other SANs or has another usage, does not match its key or expires within renew_days;
anything else is left untouched (not even rewritten). The CA is renewed (same key and name,
so copies clients pinned keep verifying until they expire) only when it expires within
renew_days, and then every certificate is issued again. A CA that is inconsistent (key and
certificate do not match, not a CA, half missing) is never replaced: the script stops and
says what to do. Keys are written 0600 from the start, every file by rename.

Prints one JSON object: changed, ca, ca_fingerprint, ca_not_after, issued (file stems:
"ca", <server>, client-<client>), reasons, modes_fixed, servers, clients (paths and expiry
dates; never key material). Problems go to stderr, exit status 1.
Python 3 standard library and `cryptography` only (ansible-core depends on it).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import stat
import sys
import tempfile

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DNS_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
SKEW = datetime.timedelta(minutes=5)  # certificates start this far back (clock skew)
DEFAULTS = {"ca_name": "hardened.vllm cluster CA", "ca_days": 3650, "days": 397, "renew_days": 30}
KNOWN = {"dir", "servers", "clients", *DEFAULTS}
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
USAGE_NAMES = {SERVER_AUTH: "serverAuth", CLIENT_AUTH: "clientAuth"}


class PkiError(Exception):
    pass


# ---- the request ----------------------------------------------------------------------------


def check_request(req):
    """The request with defaults filled in and names, DNS names and IPs normalised.

    Every problem is collected, so one run names them all.
    """
    if not isinstance(req, dict):
        raise PkiError("the request must be a JSON object")
    problems = [f"unknown field {k!r}" for k in sorted(set(req) - KNOWN)]
    out = {**DEFAULTS, **{k: v for k, v in req.items() if k in KNOWN}}
    if not isinstance(out.get("dir"), str) or not os.path.isabs(out["dir"]):
        problems.append(f"dir must be an absolute path, got {out.get('dir')!r}")
    if not isinstance(out["ca_name"], str) or not out["ca_name"].strip():
        problems.append(f"ca_name must be a non-empty string, got {out['ca_name']!r}")
    for field in ("ca_days", "days", "renew_days"):
        value = out[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{field} must be a positive whole number of days, got {value!r}")
    if not problems:
        for field in ("ca_days", "days"):
            if out["renew_days"] >= out[field]:
                problems.append(
                    f"renew_days ({out['renew_days']}) must be less than {field} "
                    f"({out[field]}), or every run would issue again"
                )

    servers, clients = out.get("servers"), out.get("clients")
    if clients is None:
        clients = {}
    if not isinstance(servers, dict) or not servers:
        problems.append("servers must be a non-empty object {node: {dns: [...], ips: [...]}}")
        servers = {}
    if not isinstance(clients, dict):
        problems.append("clients must be an object {name: {}}")
        clients = {}
    out["servers"] = {}
    for name, spec in servers.items():
        where = f"server {name!r}"
        problems += check_name(name, where)
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be an object {{dns: [...], ips: [...]}}")
            continue
        problems += [f"{where}: unknown field {k!r}" for k in sorted(set(spec) - {"dns", "ips"})]
        dns, ips = [], []
        for value in as_list(spec.get("dns", []), f"{where}: dns", problems):
            try:
                dns.append(dns_name(value))
            except ValueError as exc:
                problems.append(f"{where}: DNS name {value!r} {exc}")
        for value in as_list(spec.get("ips", []), f"{where}: ips", problems):
            try:
                ips.append(ip_address(value))
            except ValueError as exc:
                problems.append(f"{where}: IP address {value!r} {exc}")
        if not dns and not ips:
            problems.append(f"{where}: needs at least one DNS name or IP address")
        out["servers"][name] = {"dns": sorted(set(dns)), "ips": sorted(set(ips), key=ip_sort)}
    out["clients"] = {}
    for name, spec in clients.items():
        where = f"client {name!r}"
        problems += check_name(name, where)
        if spec not in (None, {}):
            problems.append(f"{where}: takes no settings (give {{}}), got {spec!r}")
        out["clients"][name] = {}
    # The names become file stems: none may be another's (nor differ only in case, for
    # case-insensitive file systems such as macOS's).
    stems = {}
    for stem in ["ca", *out["servers"], *(f"client-{n}" for n in out["clients"])]:
        stems.setdefault(stem.lower(), []).append(stem)
    for same in stems.values():
        if len(same) > 1:
            problems.append(
                "these would share files: " + ", ".join(same) + " (server names are the file "
                "names, clients' are client-<name>, the CA's is ca); rename one"
            )
    if problems:
        raise PkiError("the request is not valid:\n  " + "\n  ".join(problems))
    return out


def check_name(name, where):
    if isinstance(name, str) and NAME.fullmatch(name):
        return []
    return [f"{where}: names become file names; use letters, digits, '.', '_', '-' (1-64)"]


def as_list(value, where, problems):
    if isinstance(value, list):
        return value
    problems.append(f"{where} must be a list, got {value!r}")
    return []


def dns_name(value):
    """A DNS name in lower case (a leading '*.' allowed); ValueError says what is wrong."""
    if not isinstance(value, str):
        raise ValueError("is not a string")
    name = value.lower().removesuffix(".")
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    if len(name) > 253 or not labels or not all(DNS_LABEL.fullmatch(x) for x in labels):
        raise ValueError("is not a DNS name (ASCII letters, digits, '-', dots between labels)")
    return name


def ip_address(value):
    """The canonical text of an IP address; ValueError says what is wrong."""
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address") from None
    if getattr(ip, "scope_id", None):
        raise ValueError("has a zone (%...), which a certificate cannot carry")
    return str(ip)


def ip_sort(text):
    ip = ipaddress.ip_address(text)
    return (ip.version, int(ip))


# ---- files ----------------------------------------------------------------------------------


def write_atomic(path, data, mode):
    """Replace PATH with DATA: a temporary file beside it (0600 from the start), then rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_bytes(path):
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def public_der(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)  # cryptography >= 42
    return value or cert.not_valid_after.replace(tzinfo=datetime.UTC)


def not_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    return value or cert.not_valid_before.replace(tzinfo=datetime.UTC)


def tighten_mode(path, fixed):
    """A key file readable by group or others becomes 0600 (its content is left alone)."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        fixed.append(path)


# ---- the CA ---------------------------------------------------------------------------------


def _usage(**on):
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def _cn(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _hash_for(key):
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return hashes.SHA256()
    raise PkiError(f"the CA key is a {type(key).__name__}; pki.py signs with EC or RSA keys only")


def build_ca(key, subject, days, now):
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, _hash_for(key))


def load_ca(key_path, cert_path):
    """(key, cert) from the CA files, or None when neither exists; PkiError when inconsistent."""
    key_data, cert_data = read_bytes(key_path), read_bytes(cert_path)
    if key_data is None and cert_data is None:
        return None
    keep = "clients may pin it, so pki.py will not replace it"
    if cert_data is None:
        raise PkiError(
            f"{key_path} exists but {cert_path} does not ({keep}). Restore {cert_path} from a "
            f"backup, or move {key_path} away to make a new CA (clients must then pin the new one)"
        )
    if key_data is None:
        raise PkiError(
            f"{cert_path} exists but its key {key_path} does not ({keep}). Restore {key_path} "
            f"from a backup, or move {cert_path} away to make a new CA (clients must then pin "
            "the new one)"
        )
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(
            f"{key_path} is not an unencrypted PEM private key ({exc}). Restore it from a "
            "backup, or move the CA's files away to make a new CA"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(cert_data)
    except ValueError as exc:
        raise PkiError(
            f"{cert_path} is not a PEM certificate ({exc}). Restore it from a backup, or move "
            "the CA's files away to make a new CA"
        ) from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise PkiError(
            f"{cert_path} is not a CA certificate (no basicConstraints CA:TRUE). Put the CA's "
            "certificate there, or move ca.pem and ca.key away to make a new CA"
        )
    if public_der(key.public_key()) != public_der(cert.public_key()):
        raise PkiError(
            f"{key_path} does not match {cert_path} (another CA's key or certificate). Restore "
            f"the pair from a backup, or move both away to make a new CA ({keep})"
        )
    return key, cert


def ensure_ca(req, now, reasons, fixed):
    """The CA's key and certificate: loaded, made (first run) or renewed (expiring)."""
    key_path = os.path.join(req["dir"], "ca.key")
    cert_path = os.path.join(req["dir"], "ca.pem")
    loaded = load_ca(key_path, cert_path)
    if loaded is None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build_ca(key, _cn(req["ca_name"]), req["ca_days"], now)
        write_atomic(key_path, key_pem(key), 0o600)
        write_atomic(cert_path, cert_pem(cert), 0o644)
        reasons["ca"] = "created"
        return key, cert
    key, cert = loaded
    tighten_mode(key_path, fixed)
    expires = not_after(cert)
    if expires - now <= datetime.timedelta(days=req["renew_days"]):
        renewed = build_ca(key, cert.subject, req["ca_days"], now)
        write_atomic(cert_path, cert_pem(renewed), 0o644)
        reasons["ca"] = (
            f"renewed: expired or expiring {expires.isoformat()} (within renew_days); same key "
            "and name, every certificate issued again; give clients the new ca.pem"
        )
        return key, renewed
    return key, cert


# ---- certificates ---------------------------------------------------------------------------


def expected_sans(spec):
    return {("dns", d) for d in spec.get("dns", [])} | {("ip", i) for i in spec.get("ips", [])}


def cert_sans(cert):
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = {("dns", d.lower()) for d in san.get_values_for_type(x509.DNSName)}
    return dns | {("ip", str(i)) for i in san.get_values_for_type(x509.IPAddress)}


def cert_eku(cert):
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def signed_by(cert, ca_cert):
    if cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def why_issue(key_path, cert_path, ca_cert, common_name, sans, usage, renew, now):
    """Why the certificate must be issued again, or None when it is fine as it is."""
    key_data, cert_data = read_bytes(key_path), read_bytes(cert_path)
    if cert_data is None or key_data is None:
        return f"{os.path.basename(cert_path if cert_data is None else key_path)} is missing"
    try:
        cert = x509.load_pem_x509_certificate(cert_data)
    except ValueError:
        return f"{os.path.basename(cert_path)} is not a readable certificate"
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError):
        return f"{os.path.basename(key_path)} is not a readable unencrypted private key"
    if not signed_by(cert, ca_cert):
        return "not signed by the current CA"
    if public_der(key.public_key()) != public_der(cert.public_key()):
        return "the certificate does not match its key"
    if cert.subject != _cn(common_name):
        return f"its subject is {cert.subject.rfc4514_string()}, not CN={common_name}"
    have = cert_sans(cert)
    if have != sans:
        added = ", ".join(sorted(value for _kind, value in sans - have)) or "none"
        dropped = ", ".join(sorted(value for _kind, value in have - sans)) or "none"
        return f"the names changed (added: {added}; dropped: {dropped})"
    if cert_eku(cert) != {usage}:
        return f"its extended key usage is not only {USAGE_NAMES[usage]}"
    if not_before(cert) > now + SKEW:
        return f"not valid before {not_before(cert).isoformat()} (the clock went back?)"
    if not_after(cert) - now <= datetime.timedelta(days=renew):
        return f"expires {not_after(cert).isoformat()} (within renew_days)"
    return None


def issue(ca_key, ca_cert, common_name, sans, usage, days, now):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_cn(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    general = sorted(sans)
    if general:
        names = [
            x509.DNSName(v) if kind == "dns" else x509.IPAddress(ipaddress.ip_address(v))
            for kind, v in general
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, _hash_for(ca_key))


def run(req, now=None):
    """Bring DIR up to date with REQ (checked by check_request); the JSON result as a dict."""
    now = now or datetime.datetime.now(datetime.UTC)
    directory = req["dir"]
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
        os.chmod(directory, 0o700)  # makedirs' mode is masked by the umask
    reasons, fixed = {}, []
    ca_key, ca_cert = ensure_ca(req, now, reasons, fixed)
    ca_renewed = "ca" in reasons
    wanted = [
        (name, name, expected_sans(spec), SERVER_AUTH, "servers")
        for name, spec in sorted(req["servers"].items())
    ] + [(f"client-{name}", name, set(), CLIENT_AUTH, "clients") for name in sorted(req["clients"])]
    result = {"servers": {}, "clients": {}}
    for stem, common_name, sans, usage, group in wanted:
        key_path = os.path.join(directory, f"{stem}.key")
        cert_path = os.path.join(directory, f"{stem}.pem")
        if ca_renewed:
            reason = "the CA was " + reasons["ca"].split(":")[0]
        else:
            reason = why_issue(
                key_path, cert_path, ca_cert, common_name, sans, usage, req["renew_days"], now
            )
        if reason:
            key, cert = issue(ca_key, ca_cert, common_name, sans, usage, req["days"], now)
            write_atomic(key_path, key_pem(key), 0o600)
            write_atomic(cert_path, cert_pem(cert), 0o644)
            reasons[stem] = reason
            expires = not_after(cert)
        else:
            tighten_mode(key_path, fixed)
            expires = not_after(x509.load_pem_x509_certificate(read_bytes(cert_path)))
        result[group][common_name] = {
            "cert": cert_path,
            "key": key_path,
            "not_after": expires.isoformat(),
        }
    return {
        "changed": bool(reasons or fixed),
        "ca": os.path.join(directory, "ca.pem"),
        "ca_fingerprint": ca_cert.fingerprint(hashes.SHA256()).hex(),
        "ca_not_after": not_after(ca_cert).isoformat(),
        "issued": sorted(reasons),
        "reasons": reasons,
        "modes_fixed": sorted(fixed),
        **result,
    }


def main():
    try:
        try:
            req = json.load(sys.stdin)
        except ValueError as exc:
            raise PkiError(f"stdin is not JSON: {exc}") from None
        result = run(check_request(req))
    except PkiError as exc:
        print(f"pki.py: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pki.py: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
