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
