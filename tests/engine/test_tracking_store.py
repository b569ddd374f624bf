"""URLs as pixelpipe records them in MLflow: the place, never the key."""

from __future__ import annotations

import pytest

from pixelpipe.engine.tracking_store import public_text, public_url, sqlite_file, tracking_failed


@pytest.mark.parametrize(
    ("url", "public"),
    [
        (
            "https://x-access-token:ghp_SECRET@github.com/org/repo.git",
            "https://github.com/org/repo.git",
        ),
        ("https://ghp_SECRET@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://user:p%40ss@host:8443/a/b", "https://host:8443/a/b"),
        ("ssh://git@host:22/org/repo.git", "ssh://host:22/org/repo.git"),
        ("https://host/repo.git?token=abc", "https://host/repo.git"),
        (
            "https://b.s3.amazonaws.com/k.jpg?versionId=7&X-Amz-Signature=ff&X-Amz-Credential=A",
            "https://b.s3.amazonaws.com/k.jpg?versionId=7",
        ),
        ("https://host/a?page=2&access_token=t#frag", "https://host/a?page=2"),
        ("https://host/a#access_token=t", "https://host/a"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("/home/me/project", "/home/me/project"),
        ("sqlite:////home/me/project/mlflow.db", "sqlite:////home/me/project/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_public_url_keeps_the_place_and_drops_the_key(url: str, public: str) -> None:
    assert public_url(url) == public


def test_public_text_finds_urls_inside_text() -> None:
    text = '["https://u:pw@a.example/x?sig=1", "plain", "s3://bucket/key"]'
    assert public_text(text) == '["https://a.example/x", "plain", "s3://bucket/key"]'
    assert public_text("failed: GET http://u:pw@host:9/api?x=1 refused") == (
        "failed: GET http://host:9/api?x=1 refused"
    )


def test_sqlite_file_is_the_database_of_an_sqlite_uri() -> None:
    assert str(sqlite_file("sqlite:////tmp/p/mlflow.db")) == "/tmp/p/mlflow.db"
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("http://127.0.0.1:5000") is None


def test_the_tracking_error_is_one_line_without_credentials() -> None:
    error = tracking_failed(
        "stage 'ingest'",
        "https://bob:s3cret@mlflow.example/",
        ConnectionError("refused by https://bob:s3cret@mlflow.example/api\nsecond line"),
    )
    text = str(error)
    assert "\n" not in text and "s3cret" not in text and "bob" not in text
    assert text.startswith("stage 'ingest': MLflow tracking failed at https://mlflow.example/ (")
    assert text.endswith("or set PIXELPIPE_TRACKING=off to run without tracking")
