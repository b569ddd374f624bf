"""No credential is ever printed: errors, tracebacks and log lines (issue 11, item 9).

``PIXELPIPE_DEBUG=1`` keeps its traceback, redacted the same way: the traceback shows code
and messages (never local variables), and every line of it goes through ``redact``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shell import launch

SECRETS = ("SuperSecret123", "wJalrXUtnFEMI", "0123deadbeef", "FwoGZXIvYXdz", "AKIAEXAMPLE%2F")
SOURCES = [
    # user and secret key in an S3 URL
    ("s3://AKIAEXAMPLE:SuperSecret123@bucket/x", "s3://***@bucket/x"),
    # a secret key holding "/" (AWS secret keys may)
    ("s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG@bucket/x", "s3://***@bucket/x"),
    # a presigned URL: credential, signature and session token in the query
    (
        "https://bucket.s3.amazonaws.com/x.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Signature=0123deadbeef&X-Amz-Security-Token=FwoGZXIvYXdz",
        "https://bucket.s3.amazonaws.com/x.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***",
    ),
]


def _with_source(project: Path, source: str) -> None:
    params = project / "params.yaml"
    text = params.read_text()
    assert "  source: data/raw/demo\n" in text
    params.write_text(text.replace("  source: data/raw/demo\n", f'  source: "{source}"\n'))


def _assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, output


@pytest.mark.parametrize(("source", "shown"), SOURCES)
def test_compile_refuses_a_url_with_credentials_without_printing_them(
    project: Path, source: str, shown: str
) -> None:
    _with_source(project, source)
    result = launch(["pixelpipe", "compile"], project)
    assert result.returncode == 1, result
    _assert_no_secret(result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: params.yaml:4 ingest.source:"), lines
    assert f"got '{shown}'" in lines[0]

    debug = launch(["pixelpipe", "compile"], project, PIXELPIPE_DEBUG="1")
    assert debug.returncode == 1, debug
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().endswith(lines[0])
    _assert_no_secret(debug.stdout, debug.stderr)


LEAKY = '''\
"""A custom kind that logs the URL it reads, credentials and all, then fails."""

from pixelpipe import DatasetBuilder, PixelpipeError, StageParams, StageResult, stage

URL = "https://reader:SuperSecret123@host/x?X-Amz-Signature=0123deadbeef&part=2"


class Params(StageParams):
    """Params of ``leak``."""

    fail: str = "bug"
    """``bug`` (an exception), ``mistake`` (a PixelpipeError) or ``none``."""


@stage("leak", params=Params, inputs=0)
def leak(inputs, params, ctx):
    """Log the URL, then fail as asked."""
    ctx.log.warning("retrying %s", URL)
    if params.fail == "bug":
        raise RuntimeError(f"connection reset reading {URL}")
    if params.fail == "mistake":
        raise PixelpipeError(f"cannot read {URL}")
    return StageResult(DatasetBuilder([]))
'''


@pytest.mark.parametrize(
    ("fail", "code", "error"),
    [
        # an unexpected exception: its traceback, redacted
        ("bug", 1, "RuntimeError: connection reset reading https://***@host/x"),
        # a user mistake: one line, redacted
        ("mistake", 1, "error: cannot read https://***@host/x?X-Amz-Signature=***&part=2"),
        # no failure: the log line alone
        ("none", 0, None),
    ],
)
def test_log_lines_and_tracebacks_of_a_stage_are_redacted(
    tmp_path: Path, fail: str, code: int, error: str | None
) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "default.yaml").write_text("stages:\n  leak:\n    kind: leaky:leak\n")
    (tmp_path / "params.yaml").write_text(f"leak:\n  fail: {fail}\n")
    (tmp_path / "leaky.py").write_text(LEAKY)
    result = launch(["pixelpipe", "run", "leak"], tmp_path)
    assert result.returncode == code, result
    _assert_no_secret(result.stdout, result.stderr)
    assert "pixelpipe.leak: retrying https://***@host/x?X-Amz-Signature=***&part=2" in result.stderr
    if error:
        assert error in result.stderr
