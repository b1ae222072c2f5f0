"""The shipped templates: each renders, the verification text is exact, values are checked."""

from __future__ import annotations

import pytest

from m3o.services.emails.templates import SHIPPED, TemplateDataError, Templates

VERIFICATION_SENTENCE = (
    "please copy and paste this verification code into the signup form: ABCDEFGH "
    "This code expires in 5 minutes."
)


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates()


def test_the_four_templates_are_shipped(templates: Templates) -> None:
    assert SHIPPED == ("verification", "recovery", "welcome", "account_exists")
    assert all(name in templates for name in SHIPPED)
    assert "newsletter" not in templates


def test_the_verification_text_carries_the_exact_sentence_with_the_code(
    templates: Templates,
) -> None:
    rendered = templates.render("verification", {"code": "ABCDEFGH"})

    assert rendered.subject == "Verify your M3O account email"
    assert VERIFICATION_SENTENCE in rendered.text
    assert "This code expires" in rendered.text
    assert "ABCDEFGH" in rendered.html
    assert "This code expires in 5 minutes." in rendered.html


def test_the_recovery_email_carries_the_token_the_link_and_its_lifetime(
    templates: Templates,
) -> None:
    rendered = templates.render(
        "recovery", {"token": "tok-123", "reset_url": "https://m3o.com/reset?token=tok-123"}
    )

    assert rendered.subject == "Reset your M3O password"
    assert "tok-123" in rendered.text
    assert "https://m3o.com/reset?token=tok-123" in rendered.text
    assert "10 minutes" in rendered.text
    assert 'href="https://m3o.com/reset?token=tok-123"' in rendered.html


def test_the_recovery_email_needs_no_link(templates: Templates) -> None:
    rendered = templates.render("recovery", {"token": "tok-123"})

    assert "tok-123" in rendered.text
    assert "link" not in rendered.text
    assert "href" not in rendered.html


@pytest.mark.parametrize(("data", "greeting"), [({"name": "Ann"}, "Hi Ann,"), ({}, "Hi,")])
def test_the_welcome_email_greets_by_name_when_given(
    templates: Templates, data: dict[str, str], greeting: str
) -> None:
    rendered = templates.render("welcome", data)

    assert rendered.subject == "Welcome to M3O"
    assert rendered.text.startswith(f"{greeting} welcome to M3O!")
    assert f"{greeting} welcome to M3O!" in rendered.html


def test_values_are_escaped_in_html_but_not_in_text(templates: Templates) -> None:
    rendered = templates.render("welcome", {"name": "<b>Ann</b> & co"})

    assert "Hi <b>Ann</b> & co," in rendered.text
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; co" in rendered.html
    assert "<b>Ann" not in rendered.html


@pytest.mark.parametrize(("name", "missing"), [("verification", "code"), ("recovery", "token")])
def test_a_missing_value_is_an_error_naming_it(
    templates: Templates, name: str, missing: str
) -> None:
    with pytest.raises(TemplateDataError) as raised:
        templates.render(name, {})

    assert str(raised.value) == f"Template {name} needs the value '{missing}'"


def test_a_subject_is_always_one_line(templates: Templates) -> None:
    for name, data in [
        ("verification", {"code": "A\r\nBcc: eve@example.com"}),
        ("recovery", {"token": "t"}),
        ("welcome", {}),
    ]:
        subject = templates.render(name, data).subject
        assert "\n" not in subject
        assert "\r" not in subject


def test_the_account_exists_notice_points_to_login_and_recovery(templates: Templates) -> None:
    rendered = templates.render("account_exists", {"email": "ann@example.com"})

    assert rendered.subject == "Someone tried to sign up with your M3O email address"
    assert "log in" in rendered.text
    assert "recover your password" in rendered.text
    assert "recover your password" in rendered.html
