from __future__ import annotations

import pytest
from django.test import override_settings

from kizuna.lib import crypto


def test_encrypted_secret_decrypts_to_the_original_and_does_not_contain_it():
    token = crypto.encrypt_secret("sck_secret-value")

    assert "sck_secret-value" not in token
    assert crypto.decrypt_secret(token) == "sck_secret-value"


def test_each_encryption_is_different_but_decrypts_the_same():
    assert crypto.encrypt_secret("same") != crypto.encrypt_secret("same")


def test_secrets_survive_a_secret_key_rotation_through_the_fallbacks():
    with override_settings(SECRET_KEY="old-key-" * 8):
        token = crypto.encrypt_secret("whsec_abc")
        old_fingerprint = crypto.fingerprint("whsec_abc", purpose="test")

    with override_settings(SECRET_KEY="new-key-" * 8, SECRET_KEY_FALLBACKS=["old-key-" * 8]):
        assert crypto.decrypt_secret(token) == "whsec_abc"
        assert old_fingerprint in crypto.fingerprint_candidates("whsec_abc", purpose="test")

    with override_settings(SECRET_KEY="new-key-" * 8), pytest.raises(crypto.DecryptionError):
        crypto.decrypt_secret(token)


def test_garbage_is_a_decryption_error():
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_secret("not a token")


def test_fingerprint_is_deterministic_keyed_and_separated_by_purpose():
    first = crypto.fingerprint("value", purpose="sc-key")

    assert first == crypto.fingerprint("value", purpose="sc-key")
    assert len(first) == 64
    assert first != crypto.fingerprint("value", purpose="other")
    assert first != crypto.fingerprint("value2", purpose="sc-key")
    with override_settings(SECRET_KEY="another-secret-key-" * 4):
        assert first != crypto.fingerprint("value", purpose="sc-key")


def test_constant_time_equals_compares_str_and_bytes():
    assert crypto.constant_time_equals("abc", "abc")
    assert crypto.constant_time_equals(b"abc", "abc")
    assert not crypto.constant_time_equals("abc", "abd")
    assert not crypto.constant_time_equals("abc", "abcd")
