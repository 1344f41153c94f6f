# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fingerprints computed without gpg match gpg's (test keys made with gpg, see README)."""

from __future__ import annotations

import pytest
from _nvidia_fixtures import FIXTURES, fixture

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_pgp as pgp

FIRST = fixture("test-key.fingerprint").strip()
SECOND = fixture("test-key-second.fingerprint").strip()


def test_armored_ed25519_key_fingerprint_matches_gpg():
    assert pgp.primary_fingerprints(fixture("test-key.asc")) == [FIRST]


def test_binary_rsa_key_fingerprint_matches_gpg():
    assert pgp.primary_fingerprints((FIXTURES / "test-key-second.gpg").read_bytes()) == [SECOND]


def test_check_key_accepts_spaced_lowercase_pin():
    spaced = " ".join(FIRST[i : i + 4] for i in range(0, 40, 4)).lower()
    assert pgp.check_key(fixture("test-key.asc"), spaced) == FIRST


def test_check_key_refuses_another_key():
    with pytest.raises(pgp.PgpError, match=f"fingerprint is {FIRST}, not the pinned {SECOND}"):
        pgp.check_key(fixture("test-key.asc"), SECOND)


def test_check_key_refuses_a_file_with_two_keys():
    assert pgp.primary_fingerprints(fixture("test-keys-two.asc")) == [FIRST, SECOND]
    with pytest.raises(pgp.PgpError, match="holds 2 primary keys"):
        pgp.check_key(fixture("test-keys-two.asc"), FIRST)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("hello", "no '-----BEGIN PGP PUBLIC KEY BLOCK-----'"),
        (
            "-----BEGIN PGP MESSAGE-----\nabc\n-----END PGP MESSAGE-----\n",
            "not a PGP PUBLIC KEY BLOCK",
        ),
        (b"\x00\x01", "no '-----BEGIN PGP PUBLIC KEY BLOCK-----' armor and not binary"),
        (b"\xcd\x00\x00", "byte 2 is not an OpenPGP packet header"),
        (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
            "not valid base64",
        ),
    ],
)
def test_garbage_is_refused(data, message):
    with pytest.raises(pgp.PgpError, match=message):
        pgp.primary_fingerprints(data)


def test_truncated_key_is_refused():
    data = (FIXTURES / "test-key-second.gpg").read_bytes()[:100]
    with pytest.raises(pgp.PgpError, match="truncated"):
        pgp.primary_fingerprints(data)


@pytest.mark.parametrize("bad", ["1234", "Z" * 40, ""])
def test_bad_pins(bad):
    with pytest.raises(pgp.PgpError, match="not an OpenPGP fingerprint"):
        pgp.normalize_fingerprint(bad)


# Issue 12 "Key check": every armored block and every packet is read.
ARMORED = fixture("test-key.asc")
SECOND_BINARY = (FIXTURES / "test-key-second.gpg").read_bytes()
WITH_SUBKEY = fixture("test-key-with-subkey.asc")
WITH_SUBKEY_FP = fixture("test-key-with-subkey.fingerprint").strip()
SUBKEY_FP = fixture("test-key-with-subkey.subkey").strip()


def test_the_rebuilt_armor_is_byte_for_byte_what_gpg_exported():
    assert pgp.verified_key(ARMORED, FIRST)[2] == ARMORED.encode()
    assert pgp.verified_key(WITH_SUBKEY, WITH_SUBKEY_FP)[2] == WITH_SUBKEY.encode()


def test_the_pinned_key_with_its_subkey_is_accepted_and_the_subkey_named():
    fp, subkeys, _armored = pgp.verified_key(WITH_SUBKEY, WITH_SUBKEY_FP)
    assert (fp, subkeys) == (WITH_SUBKEY_FP, [SUBKEY_FP])


def test_a_binary_key_is_written_back_armored():
    _fp, _subkeys, armored = pgp.verified_key(SECOND_BINARY, SECOND)
    assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n")
    assert pgp.dearmor(armored) == SECOND_BINARY


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(ARMORED + pgp.armor(SECOND_BINARY).decode(), id="appended-block"),
        pytest.param(pgp.armor(SECOND_BINARY).decode() + ARMORED, id="prepended-block"),
        pytest.param(pgp.armor(pgp.dearmor(ARMORED) + SECOND_BINARY).decode(), id="same-block"),
        pytest.param(SECOND_BINARY + pgp.dearmor(ARMORED), id="binary-prepended"),
        pytest.param(pgp.dearmor(ARMORED) + SECOND_BINARY, id="binary-appended"),
        pytest.param(ARMORED + ARMORED, id="the-pinned-key-twice"),
    ],
)
def test_a_second_primary_key_anywhere_is_refused(data):
    with pytest.raises(pgp.PgpError, match="holds 2 primary keys"):
        pgp.verified_key(data, FIRST)


def test_the_old_first_block_only_check_would_have_passed_the_appended_file():
    # What issue 12 found: the first block alone is the pinned key.
    appended = ARMORED + pgp.armor(SECOND_BINARY).decode()
    first_block = appended[: appended.index("-----END PGP PUBLIC KEY BLOCK-----") + 34]
    assert pgp.primary_fingerprints(first_block) == [FIRST]
    assert pgp.primary_fingerprints(appended) == [FIRST, SECOND]


def _packet(tag, body):
    return bytes([0xC0 | tag, len(body)]) + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            ARMORED + "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
            "block 2 is a PGP SIGNATURE",
        ),
        ("Comment: trust me\n" + ARMORED, "text outside the armored key blocks"),
        (ARMORED + "extra\n", "after the last block"),
        (ARMORED.replace("=g+dW", "=AAAA"), "fails its checksum"),
        (pgp.armor(pgp.dearmor(ARMORED) + _packet(11, b"b\x00hi")), "tag 11"),
        (pgp.armor(_packet(13, b"uid") + pgp.dearmor(ARMORED)), "before any primary key"),
    ],
)
def test_anything_but_one_key_is_refused(data, message):
    with pytest.raises(pgp.PgpError, match=message):
        pgp.verified_key(data, FIRST)


def test_crc24_of_known_data():
    # RFC 4880's CRC-24 of the empty string is its initial value.
    assert pgp.crc24(b"") == 0xB704CE
