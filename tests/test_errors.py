"""Errors for people: credentials never shown, whatever prints them (issue 11, item 9)."""

from __future__ import annotations

import io
import logging

import pytest

from pixelpipe.errors import (
    PixelpipeError,
    Problem,
    RedactingFormatter,
    is_secret_param,
    redact,
    url_userinfo,
)

REDACT = [
    # user and password before the host
    ("s3://AKIAEXAMPLE:SuperSecret123@bucket/x", "s3://***@bucket/x"),
    # a secret with a raw "/" (AWS secret keys may hold one): urlsplit would take it for a path
    ("s3://AKIAEXAMPLE:wJalr/K7MDENG+bPx@bucket/x", "s3://***@bucket/x"),
    # a secret starting with "/"
    ("s3://AKIAEXAMPLE:/K7MDENG@bucket/x", "s3://***@bucket/x"),
    # a token as the user, a port after the host
    ("https://x-access-token:ghp_abc@host:8443/org/r.git", "https://***@host:8443/org/r.git"),
    # inside a message, quoted as pydantic and repr() quote it
    ("got 's3://K:S@b/x', expected a path", "got 's3://***@b/x', expected a path"),
    # a presigned URL: the credential parameters lose their value, the others stay
    (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F2024%2Fus-east-1&X-Amz-Date=20240101T000000Z"
        "&X-Amz-Expires=60&X-Amz-Security-Token=FwoG&X-Amz-Signature=deadbeef#frag",
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=***&X-Amz-Date=20240101T000000Z"
        "&X-Amz-Expires=60&X-Amz-Security-Token=***&X-Amz-Signature=***#frag",
    ),
    # names in any case: an Azure SAS, the old S3 query auth, OAuth tokens, API keys
    ("https://a.blob.core.windows.net/c?sv=2022&SIG=abc%3D&se=1", None),
    ("https://h/o?AWSAccessKeyId=AKIA&Expires=1&Signature=abc", None),
    ("https://h/o?access_token=abc&token=def&key=ghi&api_key=jkl", None),
    # two URLs in one line, and one URL inside another's query
    ("a https://u:p@h1/x and https://h2/y?redirect=ftp://u2:p2@h3/z", None),
    # nothing secret: a port, an @ in a path, a DVC remote, plain text with "="
    ("https://host:8080/users/a@b.com", "https://host:8080/users/a@b.com"),
    ("remote://store/sets/a?versionId=3", "remote://store/sets/a?versionId=3"),
    ("dedupe.max_distance=4 in params.yaml", "dedupe.max_distance=4 in params.yaml"),
]
SECRETS = ("SuperSecret", "wJalr", "K7MDENG", "ghp_abc", "deadbeef", "FwoG", "AKIA%2F", "abc", "p2")


@pytest.mark.parametrize(("text", "expected"), REDACT)
def test_redact(text: str, expected: str | None) -> None:
    shown = redact(text)
    if expected is not None:
        assert shown == expected
    for secret in SECRETS:
        assert secret not in shown
    assert "***" in shown or shown == text


@pytest.mark.parametrize(
    ("url", "userinfo"),
    [
        ("s3://KEY:SECRET@bucket/x", "KEY:SECRET"),
        ("s3://KEY:abc/def@bucket/x", "KEY:abc/def"),
        ("ssh://git@host/repo", "git"),
        ("https://host:8080/a@b", None),
        ("http://[::1]:8080/a@b", None),
        ("data/raw/demo", None),
    ],
)
def test_url_userinfo(url: str, userinfo: str | None) -> None:
    assert url_userinfo(url) == userinfo


def test_secret_parameter_names() -> None:
    for name in ("X-Amz-Signature", "x-amz-credential", "X-Amz-Security-Token", "sig", "key"):
        assert is_secret_param(name)
    for name in ("X-Amz-Date", "X-Amz-Expires", "versionId", "prefix", "se", "sv"):
        assert not is_secret_param(name)


def test_a_problem_is_redacted_when_rendered() -> None:
    problem = Problem(
        "cannot list s3://KEY:SECRET@bucket/x?sig=SIGVALUE", file="params.yaml", line=4
    )
    assert str(problem) == "params.yaml:4: cannot list s3://***@bucket/x?sig=***"
    with pytest.raises(PixelpipeError, match=r"s3://\*\*\*@bucket/x\?sig=\*\*\*$") as caught:
        raise PixelpipeError(problem)
    assert "SECRET" not in str(caught.value) and "SIGVALUE" not in str(caught.value)


def test_log_lines_and_their_tracebacks_are_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
    log = logging.getLogger("pixelpipe.test_errors")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("retrying %s", "https://u:PASSWORD@host/x?token=TOKEN")
        try:
            raise OSError("403 for s3://bucket/x?X-Amz-Signature=SIGNATURE")
        except OSError:
            log.exception("read failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "pixelpipe.test_errors: retrying https://***@host/x?token=***" in text
    assert "OSError: 403 for s3://bucket/x?X-Amz-Signature=***" in text
    for secret in ("PASSWORD", "TOKEN", "SIGNATURE"):
        assert secret not in text
