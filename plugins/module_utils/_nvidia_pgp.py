# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenPGP public key fingerprints without gpg (RFC 4880 and RFC 9580 packet framing).

Used to pin a package repository's signing key: the downloaded key file must hold exactly
one primary key and its fingerprint must be the pinned one. Stdlib only, so it runs on a
minimal target that has no gnupg.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

PUBLIC_KEY_TAG = 6
_ARMOR = re.compile(
    r"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(?P<body>.*?)-----END PGP PUBLIC KEY BLOCK-----",
    re.DOTALL,
)
_HEX = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


class PgpError(ValueError):
    """The data is not an OpenPGP public key the way we expect it."""


def normalize_fingerprint(text):
    """'EB69 3B30 ... 63CC' or 'eb693b...' -> 'EB693B...'; raise PgpError if not 40/64 hex."""
    value = re.sub(r"\s+", "", str(text)).upper()
    if value.startswith("0X"):
        value = value[2:]
    if not _HEX.match(value):
        raise PgpError(f"{text!r} is not an OpenPGP fingerprint (40 or 64 hex digits)")
    return value


def dearmor(data):
    """Binary key data from ASCII armor (bytes or str); binary input is returned as is."""
    if isinstance(data, bytes):
        if data[:1] and data[0] & 0x80:
            return data
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return data
    else:
        text = data
    match = _ARMOR.search(text)
    if not match:
        if "-----BEGIN PGP" in text:
            raise PgpError("the armored block is not a PGP PUBLIC KEY BLOCK")
        raise PgpError("no '-----BEGIN PGP PUBLIC KEY BLOCK-----' armor and not binary key data")
    lines = match.group("body").splitlines()
    # Armor headers ("Version: ...") end at the first empty line, if there are any.
    if any(":" in line for line in lines[:1]) and "" in lines:
        lines = lines[lines.index("") + 1 :]
    payload = "".join(line.strip() for line in lines if line.strip() and not line.startswith("="))
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PgpError("the armored key is not valid base64") from None


def iter_packets(data):
    """Yield (tag, body) for each OpenPGP packet in binary data."""
    pos = 0
    while pos < len(data):
        head = data[pos]
        if not head & 0x80:
            raise PgpError(f"byte {pos} is not an OpenPGP packet header")
        if head & 0x40:  # new format
            tag = head & 0x3F
            pos += 1
            first = data[pos] if pos < len(data) else None
            if first is None:
                raise PgpError("truncated packet header")
            if first < 192:
                length, pos = first, pos + 1
            elif first < 224:
                length, pos = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
            else:
                raise PgpError("partial body lengths do not occur in public keys")
        else:  # old format
            tag = (head >> 2) & 0x0F
            size = {0: 1, 1: 2, 2: 4}.get(head & 0x03)
            if size is None:
                raise PgpError("indeterminate packet length does not occur in public keys")
            length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
            pos += 1 + size
        body = data[pos : pos + length]
        if len(body) != length:
            raise PgpError("truncated packet")
        yield tag, body
        pos += length


def fingerprint(body):
    """Fingerprint of one public key packet body (v4: SHA-1, v5/v6: SHA-256)."""
    if not body:
        raise PgpError("empty public key packet")
    version = body[0]
    if version == 4:
        return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    raise PgpError(f"public key packet version {version} is not supported (only 4, 5 and 6)")


def primary_fingerprints(data):
    """Fingerprints of the primary keys (not subkeys) in armored or binary key data."""
    return [fingerprint(body) for tag, body in iter_packets(dearmor(data)) if tag == PUBLIC_KEY_TAG]


def check_key(data, expected):
    """The key's fingerprint if `data` holds exactly one primary key and it is `expected`."""
    want = normalize_fingerprint(expected)
    found = primary_fingerprints(data)
    if not found:
        raise PgpError("the key data holds no public key")
    if len(found) > 1:
        raise PgpError(
            f"the key data holds {len(found)} primary keys ({', '.join(found)}); "
            "a pinned repository key file must hold exactly one"
        )
    if found[0] != want:
        raise PgpError(f"the key's fingerprint is {found[0]}, not the pinned {want}")
    return found[0]
