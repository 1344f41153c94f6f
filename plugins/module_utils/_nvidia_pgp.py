# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenPGP public key fingerprints without gpg (RFC 4880 and RFC 9580 packet framing).

Used to pin a package repository's signing key: every armored block and every packet of the
download is read, it must hold exactly one primary key (with its own user IDs, signatures
and subkeys), that key's fingerprint must be the pinned one, and what is written is rebuilt
from the checked packets. Signatures are not verified (no public key cryptography in the
stdlib): the fingerprint pin plus TLS is the trust anchor, as with apt's signed-by.
Stdlib only, so it runs on a minimal target that has no gnupg.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

PUBLIC_KEY_TAG = 6
PUBLIC_SUBKEY_TAG = 14
# Packets a transferable public key may hold after its primary key (RFC 4880 11.1, RFC 9580
# 10.1): signatures, trust, user IDs, user attributes, subkeys. Anything else is refused.
_KEY_PACKETS = {2: "signature", 12: "trust", 13: "user ID", 14: "subkey", 17: "user attribute"}
_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_END = "-----END PGP PUBLIC KEY BLOCK-----"
_ARMOR = re.compile(
    r"-----BEGIN PGP (?P<kind>[A-Z ,/0-9]+)-----\r?\n(?P<body>.*?)-----END PGP (?P=kind)-----",
    re.DOTALL,
)
_HEX = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")
_CRC24_INIT = 0xB704CE
_CRC24_POLY = 0x1864CFB


class PgpError(ValueError):
    """The data is not an OpenPGP public key the way we expect it."""


def crc24(data):
    """The armor checksum of RFC 4880 6.1."""
    crc = _CRC24_INIT
    for byte in data:
        crc ^= byte << 16
        for _bit in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
    return crc & 0xFFFFFF


def normalize_fingerprint(text):
    """'EB69 3B30 ... 63CC' or 'eb693b...' -> 'EB693B...'; raise PgpError if not 40/64 hex."""
    value = re.sub(r"\s+", "", str(text)).upper()
    if value.startswith("0X"):
        value = value[2:]
    if not _HEX.match(value):
        raise PgpError(f"{text!r} is not an OpenPGP fingerprint (40 or 64 hex digits)")
    return value


def _decode_block(number, body):
    lines = body.splitlines()
    # Armor headers ("Version: ...") end at the first empty line, if there are any.
    if lines and ":" in lines[0] and "" in lines:
        lines = lines[lines.index("") + 1 :]
    lines = [line.strip() for line in lines if line.strip()]
    checksum = None
    if lines and lines[-1].startswith("=") and len(lines[-1]) == 5:
        checksum = lines.pop()
    try:
        data = base64.b64decode("".join(lines), validate=True)
        expected = base64.b64decode(checksum[1:], validate=True) if checksum else None
    except (binascii.Error, ValueError):
        raise PgpError(f"armored block {number} is not valid base64") from None
    if expected is not None and int.from_bytes(expected, "big") != crc24(data):
        raise PgpError(f"armored block {number} fails its checksum (damaged or edited)")
    return data


def dearmor(data):
    """Binary key data from every armored block (bytes or str); binary input as it is.

    Every block must be a PUBLIC KEY BLOCK and nothing but white space may stand between,
    before or after the blocks: a second key hidden in a second block, or text a key
    parser might read differently, is refused rather than skipped.
    """
    if isinstance(data, bytes):
        if data[:1] and data[0] & 0x80:
            return data
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return data
    else:
        text = data
    blocks = []
    pos = 0
    for number, match in enumerate(_ARMOR.finditer(text), start=1):
        if text[pos : match.start()].strip():
            raise PgpError(f"text outside the armored key blocks (before block {number})")
        if match["kind"] != "PUBLIC KEY BLOCK":
            raise PgpError(
                f"armored block {number} is a PGP {match['kind']}, not a PGP PUBLIC KEY BLOCK"
            )
        blocks.append(_decode_block(number, match["body"]))
        pos = match.end()
    if not blocks:
        if "-----BEGIN PGP" in text:
            raise PgpError("the armored block is not a complete PGP PUBLIC KEY BLOCK")
        raise PgpError(f"no '{_BEGIN}' armor and not binary key data")
    if text[pos:].strip():
        raise PgpError("text outside the armored key blocks (after the last block)")
    return b"".join(blocks)


def armor(data):
    """ASCII armor for binary key data, the way gpg --export --armor writes it."""
    body = base64.b64encode(data).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    checksum = base64.b64encode(crc24(data).to_bytes(3, "big")).decode("ascii")
    return "\n".join([_BEGIN, "", *lines, f"={checksum}", _END, ""]).encode("ascii")


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
    return [fp for fp, _subkeys in _keys(dearmor(data))]


def _keys(binary):
    """[(primary fingerprint, [subkey fingerprints])] of every key in binary data."""
    keys = []
    # Frame every packet first: a broken stream fails as such, wherever it breaks.
    for number, (tag, body) in enumerate(list(iter_packets(binary)), start=1):
        if tag == PUBLIC_KEY_TAG:
            keys.append((fingerprint(body), []))
        elif tag not in _KEY_PACKETS:
            raise PgpError(f"packet {number} (tag {tag}) does not belong in a public key file")
        elif not keys:
            raise PgpError(f"packet {number} ({_KEY_PACKETS[tag]}) comes before any primary key")
        elif tag == PUBLIC_SUBKEY_TAG:
            keys[-1][1].append(fingerprint(body))
    return keys


def verified_key(data, expected):
    """(fingerprint, subkeys, armored bytes) when `data` is exactly the pinned key.

    Every armored block and every packet is read. The data must hold one primary key,
    `expected`, followed only by its own user IDs, signatures and subkeys; a second key
    appended, prepended or concatenated in any block is refused. The armored bytes are
    rebuilt from the parsed packets alone, so what is written is what was checked.
    """
    want = normalize_fingerprint(expected)
    binary = dearmor(data)
    keys = _keys(binary)
    found = [fp for fp, _subkeys in keys]
    if not found:
        raise PgpError("the key data holds no public key")
    if len(found) > 1:
        raise PgpError(
            f"the key data holds {len(found)} primary keys ({', '.join(found)}); "
            "a pinned repository key file must hold exactly one"
        )
    if found[0] != want:
        raise PgpError(f"the key's fingerprint is {found[0]}, not the pinned {want}")
    return found[0], keys[0][1], armor(binary)


def check_key(data, expected):
    """The key's fingerprint if `data` holds exactly one primary key and it is `expected`."""
    return verified_key(data, expected)[0]
