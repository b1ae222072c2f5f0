"""The key format, its checksum and the keyed hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string
import uuid

from m3o.services.v1.keys.format import (
    KEY_LENGTH,
    PREFIX,
    hash_key,
    hash_matches,
    is_key_hash,
    is_legacy_form,
    is_well_formed,
    legacy_hash,
    new_key,
)

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def test_a_new_key_is_the_prefix_43_random_base62_characters_and_a_checksum() -> None:
    key = new_key()
    assert key.startswith("m3o_")
    assert len(key) == KEY_LENGTH == 4 + 43 + 6
    assert re.fullmatch(r"m3o_[0-9A-Za-z]{49}", key)
    assert is_well_formed(key)


def test_new_keys_differ() -> None:
    assert len({new_key() for _ in range(200)}) == 200


def test_every_single_character_typo_is_rejected_without_a_lookup() -> None:
    key = new_key()
    for position in range(len(PREFIX), len(key)):
        for replacement in BASE62:
            if replacement == key[position]:
                continue
            typo = key[:position] + replacement + key[position + 1 :]
            assert not is_well_formed(typo), (position, replacement)


def test_swapped_neighbours_are_rejected() -> None:
    key = new_key()
    for position in range(len(PREFIX), len(key) - 1):
        a, b = key[position], key[position + 1]
        if a == b:
            continue
        swapped = key[:position] + b + a + key[position + 2 :]
        assert not is_well_formed(swapped), position


def test_wrong_prefix_length_or_alphabet_is_rejected() -> None:
    key = new_key()
    assert not is_well_formed("")
    assert not is_well_formed("M3O_" + key[4:])
    assert not is_well_formed("sk_" + key[3:])
    assert not is_well_formed(key[:-1])
    assert not is_well_formed(key + "0")
    assert not is_well_formed(key[:10] + "-" + key[11:])
    assert not is_well_formed(" " + key[1:])


def test_the_hash_is_hmac_sha256_with_the_pepper_and_never_the_key() -> None:
    key = new_key()
    digest = hash_key(key, b"pepper")
    assert digest == hmac.new(b"pepper", key.encode(), hashlib.sha256).hexdigest()
    assert key not in digest
    assert digest != hashlib.sha256(key.encode()).hexdigest()
    assert hash_key(key, b"other pepper") != digest
    assert is_key_hash(digest)


def test_hashes_compare_equal_only_when_equal() -> None:
    digest = hash_key(new_key(), b"p")
    assert hash_matches(digest, digest)
    assert not hash_matches(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1"))
    assert not hash_matches(digest, "")
    assert not hash_matches(digest, "é" * 64)


def test_a_hash_is_64_lower_case_hex_digits() -> None:
    assert not is_key_hash("")
    assert not is_key_hash("A" * 64)
    assert not is_key_hash("a" * 63)
    assert not is_key_hash("g" * 64)
    assert is_key_hash("0123456789abcdef" * 4)


def test_an_m3o_key_is_the_base64_of_a_uuid_and_its_hash_the_plain_sha256() -> None:
    key = base64.b64encode(str(uuid.uuid4()).encode()).decode()
    assert len(key) == 48
    assert is_legacy_form(key)
    assert not is_well_formed(key)
    assert legacy_hash(key) == hashlib.sha256(key.encode()).hexdigest()
    assert is_key_hash(legacy_hash(key))


def test_only_the_shape_m3o_generated_is_an_m3o_key() -> None:
    hex_uuid = uuid.uuid4().hex
    for text in (
        hex_uuid[:32] + "----",  # 36 characters, not a uuid's text
        str(uuid.uuid4()).upper(),  # Go wrote lower case
        "x" * 36,
    ):
        assert not is_legacy_form(base64.b64encode(text.encode()).decode())
    key = base64.b64encode(str(uuid.uuid4()).encode()).decode()
    assert not is_legacy_form(key + "=")
    assert not is_legacy_form(key[:-1] + "!")
    assert not is_legacy_form(new_key())
