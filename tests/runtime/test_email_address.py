"""The one email rule every service applies: normalised, strict, ASCII only, no DNS."""

from __future__ import annotations

import pytest

from m3o.runtime import email_address
from m3o.runtime.email_address import (
    InvalidEmail,
    SignupPolicy,
    is_valid_email,
    normalise_email,
    parse_email,
)


def test_the_public_surface_is_pinned() -> None:
    assert sorted(email_address.__all__) == [
        "InvalidEmail",
        "MAX_EMAIL_LENGTH",
        "MAX_LOCAL_LENGTH",
        "SignupPolicy",
        "is_valid_email",
        "mask_email",
        "normalise_email",
        "parse_email",
    ]


def test_normalise_email_trims_and_lower_cases() -> None:
    assert normalise_email("  Ann.Smith+x@Example.COM\n") == "ann.smith+x@example.com"


@pytest.mark.parametrize(
    ("email", "parsed"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Smith+Tag@Mail.Example.CO.UK ", "ann.smith+tag@mail.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("first_last-1@sub-domain.example.com", "first_last-1@sub-domain.example.com"),
        ("ann@xn--bcher-kva.example", "ann@xn--bcher-kva.example"),
        ("ann@123.example.com", "ann@123.example.com"),
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ],
)
def test_ordinary_addresses_are_accepted_and_normalised(email: str, parsed: str) -> None:
    assert parse_email(email) == parsed
    assert is_valid_email(email)


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("", "it is empty"),
        ("ann", "it must be one address such as name@example.com"),
        ("a@b@example.com", "it must be one address such as name@example.com"),
        ("<script>@x.com", "the name before the @ holds a character that is not accepted"),
        ("ann<ann@example.com>", "the name before the @ holds a character that is not accepted"),
        ("ann@<x>.com", "the domain must be a name such as example.com"),
        ('"a"@example.com', "quoted names are not accepted"),
        ('"a b"@example.com', "spaces and control characters are not accepted"),
        ("a\x00b@example.com", "spaces and control characters are not accepted"),
        ("ann@example.com\x00", "spaces and control characters are not accepted"),
        ("a nn@example.com", "spaces and control characters are not accepted"),
        ("ann@x.com\r\nbcc: eve@x.com", "spaces and control characters are not accepted"),
        ("ann@example.com\r\n", "spaces and control characters are not accepted"),
        ("\tann@example.com", "spaces and control characters are not accepted"),
        ("ann@example.com\x7f", "spaces and control characters are not accepted"),
        ("ann\u200b@example.com", "spaces and control characters are not accepted"),
        ("ann@example.com\u2028", "spaces and control characters are not accepted"),
        ("\u0430nn@example.com", "only ASCII characters are accepted"),  # a Cyrillic "a"
        ("ann@ex\u0430mple.com", "only ASCII characters are accepted"),  # a Cyrillic "a"
        ("ann@bücher.example", "only ASCII characters are accepted"),
        ("ann(x)@example.com", "the name before the @ holds a character that is not accepted"),
        ("@example.com", "the name before the @ is missing"),
        (".ann@example.com", "dots in the name before the @ must be between other characters"),
        ("ann.@example.com", "dots in the name before the @ must be between other characters"),
        ("a..nn@example.com", "dots in the name before the @ must be between other characters"),
        ("a" * 65 + "@example.com", "the name before the @ is longer than 64 characters"),
        ("ann@", "the domain must be a name such as example.com"),
        ("ann@example", "the domain must be a name such as example.com"),
        ("ann@example.com.", "the domain must be a name such as example.com"),
        ("ann@.example.com", "the domain must be a name such as example.com"),
        ("ann@example..com", "the domain must be a name such as example.com"),
        ("ann@-example.com", "the domain must be a name such as example.com"),
        ("ann@example-.com", "the domain must be a name such as example.com"),
        ("ann@exa_mple.com", "the domain must be a name such as example.com"),
        ("ann@[127.0.0.1]", "the domain must be a name such as example.com"),
        ("ann@127.0.0.1", "the domain must be a name, not an IP address"),
        ("ann@" + "a" * 64 + ".com", "the domain must be a name such as example.com"),
        ("a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 63 + ".com",
         "it is longer than 254 characters"),
    ],
)  # fmt: skip
def test_anything_else_is_refused_with_its_reason(email: str, reason: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        parse_email(email)
    assert caught.value.reason == reason
    assert caught.value.detail() == f"Invalid email: {reason}"
    assert not is_valid_email(email)


@pytest.mark.parametrize(
    ("email", "block", "allow", "allowed"),
    [
        # Go's regexp.MatchString: a pattern found anywhere in the address matches.
        ("x@spam.com", ["@spam.com"], [], False),
        ("ann@spam.com", [r".*@spam\.com"], [], False),
        ("ann@spam.com.example.org", [r"@spam\.com"], [], False),
        ("ann@spam.com.example.org", [r"@spam\.com$"], [], True),  # anchored by the pattern
        ("ann.spam@example.com", ["^spam"], [], True),
        ("ann@example.com", [], [r"@example\.com$"], True),
        ("ann@other.com", [], [r"@example\.com$"], False),
        ("ann@example.com", [], ["example"], True),
        ("bad@example.com", ["bad@"], [r"@example\.com"], False),  # must pass both
        ("ann@m3o.com", [r"ann@m3o\.com|bob@"], [], False),
        ("ann@example.com", [""], [], True),  # an empty entry matches nothing
        ("ann@example.com", [], [""], False),
        # case-sensitive like Go; the address is normalised to lower case
        ("ann@spam.com", ["@SPAM.com"], [], True),
        ("ann@spam.com", ["(?i)@SPAM.com"], [], False),
    ],
)
def test_signup_policy_block_and_allow_lists(
    email: str, block: list[str], allow: list[str], allowed: bool
) -> None:
    assert SignupPolicy(block_list=block, allow_list=allow).may_sign_up(email) is allowed


def test_signup_policy_also_matches_the_address_as_given() -> None:
    # The reference matched what the caller typed; a pattern with capitals still matches it.
    policy = SignupPolicy(block_list=["@Spam.com"])
    assert not policy.may_sign_up("ann@spam.com", given=" Ann@Spam.com ")
    assert policy.may_sign_up("ann@spam.com", given="ann@spam.com")
    allow = SignupPolicy(allow_list=["^Boss@"])
    assert allow.may_sign_up("boss@corp.com", given="Boss@corp.com")
    assert not allow.may_sign_up("boss@corp.com", given="boss@corp.com")


def test_signup_policy_engagement_block_list_ignores_case() -> None:
    policy = SignupPolicy(engagement_block_list=["Test@M3O.com", " "])
    assert not policy.gets_onboarding("test@m3o.com")
    assert policy.gets_onboarding("ann@m3o.com")
