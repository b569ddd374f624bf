"""Sources: local folders that never lead outside, S3 for real (moto on 127.0.0.1), DVC remotes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelpipe.errors import PixelpipeError
from pixelpipe.sources import credential_problem, open_tree, public_url, safe_relative

SECRET = "s3cr3t-never-shown"

SAFE = [
    # a plain relative path
    ("a/b.jpg", "a/b.jpg"),
    # dots and repeated slashes are tidied
    ("./a//b.jpg", "a/b.jpg"),
    # backslashes are separators
    ("a\\b.jpg", "a/b.jpg"),
    # spaces, many dots and non-ASCII are names like any other
    ("a b/ü.tar.gz.jpg", "a b/ü.tar.gz.jpg"),
    # climbing out
    ("../a.jpg", None),
    # climbing out in the middle
    ("a/../../b.jpg", None),
    # absolute
    ("/etc/passwd", None),
    # a Windows drive
    ("C:/x.jpg", None),
    # nothing
    ("", None),
    # a NUL byte
    ("a\x00.jpg", None),
]


@pytest.mark.parametrize(("name", "expected"), SAFE)
def test_safe_relative(name: str, expected: str | None) -> None:
    assert safe_relative(name) == expected


PUBLIC = [
    # user and password are dropped
    ("https://user:pw@host:8080/a/b?x=1#f", "https://host:8080/a/b"),
    # a presigned query is dropped
    ("s3://bucket/key?X-Amz-Signature=abc", "s3://bucket/key"),
    # a plain path is untouched
    ("data/raw", "data/raw"),
    # a DVC remote URL keeps its name and path
    ("remote://store/sets/a", "remote://store/sets/a"),
    # a secret holding a "/" (AWS secret keys may) is user info, not a host and a path
    ("s3://AKIAEXAMPLE:wJalr/K7MDENG@bucket/x", "s3://bucket/x"),
]


@pytest.mark.parametrize(("url", "shown"), PUBLIC)
def test_public_url(url: str, shown: str) -> None:
    assert public_url(url) == shown


CREDENTIALS = [
    # a password in the URL
    ("https://user:pw@host/a", "holds credentials"),
    # a token in the query
    ("https://host/a?token=abc", "signature or token"),
    # a SAS signature
    ("https://acct.blob.core.windows.net/c?sig=abc&se=1", "signature or token"),
    # a presigned S3 URL
    ("https://b.s3.amazonaws.com/k?X-Amz-Date=1&X-Amz-Signature=abc", "signature or token"),
    # a secret holding a "/", which urlsplit reads as a host "KEY" with port "wJalr"
    ("s3://AKIAEXAMPLE:wJalr/K7MDENG@bucket/x", "holds credentials"),
    # a query that names no credential
    ("s3://bucket/key?versionId=3", None),
    # clean URLs and paths
    ("s3://bucket/prefix", None),
    ("data/raw/demo", None),
]


@pytest.mark.parametrize(("url", "problem"), CREDENTIALS)
def test_credential_problem(url: str, problem: str | None) -> None:
    found = credential_problem(url)
    assert (found is None) if problem is None else (problem in str(found))


def test_local_tree_refuses_links_out_and_hides_dot_files(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a b ü.jpg").write_bytes(b"x")
    (root / ".git").mkdir()
    (root / ".git" / "x").write_bytes(b"x")
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / "file_out.jpg").symlink_to(outside / "secret.jpg")
    (root / "dir_out").symlink_to(outside)
    (root / "inside").symlink_to(root / "sub")
    (root / "sub" / "loop").symlink_to(root)
    tree = open_tree(str(root))
    assert tree.files == ["inside/a b ü.jpg", "sub/a b ü.jpg"]
    assert set(tree.links_out) == {"file_out.jpg", "dir_out"}
    assert tree.hidden == 2
    assert tree.status("dir_out/secret.jpg") == "unsafe"
    assert tree.status("sub/a b ü.jpg") == "ok" and tree.status("nope.jpg") == "missing"
    followed = open_tree(str(root), follow_symlinks=True)
    assert "dir_out/secret.jpg" in followed.files and "file_out.jpg" in followed.files


def test_a_file_location_gives_its_folder_and_a_hint(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    tree = open_tree(str(tmp_path / "data.yaml"))
    assert tree.hint == "data.yaml" and tree.files == ["data.yaml"]


def test_missing_local_source(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"source folder not found: nowhere"):
        open_tree("nowhere", tmp_path)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on 127.0.0.1, with a bucket of odd names."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    try:
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
        fs.mkdir("bucket")
        for key in ("sets/a/one.jpg", "sets/a/sub dir/ü two.jpg", "sets/a/.hidden", "sets/b.txt"):
            fs.pipe(f"bucket/{key}", key.encode())
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return s3_endpoint


def test_s3_prefix_is_listed_and_read(s3_env: str) -> None:
    tree = open_tree("s3://bucket/sets/a")
    assert tree.files == ["one.jpg", "sub dir/ü two.jpg"]
    assert tree.hidden == 1 and not tree.local
    assert tree.read_bytes("sub dir/ü two.jpg") == b"sets/a/sub dir/\xc3\xbc two.jpg"
    assert tree.uri("one.jpg") == "s3://bucket/sets/a/one.jpg"


def test_s3_object_gives_its_prefix_and_a_hint(s3_env: str) -> None:
    tree = open_tree("s3://bucket/sets/b.txt")
    assert tree.hint == "b.txt" and "a/one.jpg" in tree.files


def test_s3_errors_name_the_place_never_the_secret(s3_env: str) -> None:
    with pytest.raises(
        PixelpipeError, match=r"source not found or empty: s3://bucket/nothing"
    ) as caught:
        open_tree("s3://bucket/nothing")
    assert SECRET not in str(caught.value)
    with pytest.raises(PixelpipeError, match=r"cannot list s3://no-such-bucket/x") as caught:
        open_tree("s3://no-such-bucket/x")
    assert SECRET not in str(caught.value)


def test_dvc_remote_url_uses_the_remote_endpoint_and_keys(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    dvc = tmp_path / ".dvc"
    dvc.mkdir()
    (dvc / "config").write_text(
        f"['remote \"store\"']\n    url = s3://bucket/sets\n    endpointurl = {s3_endpoint}\n"
    )
    (dvc / "config.local").write_text(
        f"['remote \"store\"']\n    access_key_id = testing\n    secret_access_key = {SECRET}\n"
    )
    tree = open_tree("remote://store/a", tmp_path)
    assert tree.files == ["one.jpg", "sub dir/ü two.jpg"]
    assert tree.display == "remote://store/a" and tree.read_bytes("one.jpg") == b"sets/a/one.jpg"
    with pytest.raises(PixelpipeError, match=r"remote://nope/a: cannot use DVC remote 'nope'"):
        open_tree("remote://nope/a", tmp_path)


def test_remote_url_outside_a_dvc_project(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"is not a DVC project"):
        open_tree("remote://store/a", tmp_path)


def test_unknown_protocol_is_an_error() -> None:
    with pytest.raises(PixelpipeError, match=r"nosuch://x: cannot open"):
        open_tree("nosuch://x")


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving a folder with directory listings."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "set" / "sub").mkdir(parents=True)
    (tmp_path / "set" / "sub" / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "set" / "annotations.json").write_text("{}")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_folder_with_a_listing(http_root: str) -> None:
    tree = open_tree(f"{http_root}/set/")
    assert tree.files == ["annotations.json", "sub/a.jpg"]
    assert tree.read_bytes("sub/a.jpg") == b"jpeg"


def test_a_missing_filesystem_package_is_named() -> None:
    with pytest.raises(PixelpipeError, match=r"gs://bucket/x: cannot open: .*gcsfs"):
        open_tree("gs://bucket/x")


# Names as bytes on disk -> the expected id. Names that are UTF-8 are their id; the bytes of
# a name that is not are %XX, and its own % is %25 (urllib.parse.unquote_to_bytes reverses it).
NAMES = [
    # not UTF-8 (Latin-1 bytes, a lone continuation byte)
    (b"bad\xff\xfename.jpg", "bad%FF%FEname.jpg"),
    # a folder whose name is not UTF-8
    (b"caf\xe9/photo.jpg", "caf%E9/photo.jpg"),
    # a % in a name that is not UTF-8 is escaped too, so the id reverses exactly
    (b"50%\xff.jpg", "50%25%FF.jpg"),
    # UTF-8 names are their id, % and escape-looking text included
    ("100% ü.jpg".encode(), "100% ü.jpg"),
    (b"caf%E9.jpg", "caf%E9.jpg"),
]


def test_names_that_are_not_utf8_get_reversible_ids(tmp_path: Path) -> None:
    from urllib.parse import unquote_to_bytes

    root = tmp_path / "root"
    root.mkdir()
    for raw, _ in NAMES:
        path = os.fsencode(root) + b"/" + raw
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(raw)
    tree = open_tree(str(root))
    assert tree.files == sorted(expected for _, expected in NAMES)
    for raw, expected in NAMES:
        assert tree.read_bytes(expected) == raw, expected
        assert tree.status(expected) == "ok"
        expected.encode("utf-8")  # a valid string: parquet, JSON and logs can hold it
        if not _is_utf8(raw):
            assert unquote_to_bytes(expected) == raw


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_name_ids_are_unique_and_leave_text_names_alone() -> None:
    import itertools
    import random
    from urllib.parse import unquote_to_bytes

    from pixelpipe.sources import name_id

    alphabet = [b"a", b"%", b"E", b"9", b"2", b"5", b"\xc3", b"\xa9", b"\xe9", b"\xff", b"\x80"]
    names = {b"".join(p) for n in range(1, 5) for p in itertools.product(alphabet, repeat=n)}
    generator = random.Random(11)
    names |= {
        bytes(generator.randrange(1, 256) for _ in range(8)).replace(b"/", b"_")
        for _ in range(3000)
    }
    ids: dict[str, set[bytes]] = {}
    for raw in sorted(names):
        got = name_id(os.fsdecode(raw))
        got.encode("utf-8")
        if _is_utf8(raw):
            assert got == raw.decode("utf-8"), raw
        else:
            assert unquote_to_bytes(got) == raw, raw
        ids.setdefault(got, set()).add(raw)
    # Two names share an id only as text that reads like the other's escape (a%FF beside the
    # bytes a\xff): a listing refuses that pair (next test).
    for got, raws in ids.items():
        if len(raws) > 1:
            text, escaped = sorted(raws, key=_is_utf8, reverse=True)
            assert len(raws) == 2 and _is_utf8(text) and not _is_utf8(escaped), raws
            assert unquote_to_bytes(got) == escaped and text.decode() == got
    assert sum(len(r) > 1 for r in ids.values()) > 0, "the pairs the listing refuses exist"


def test_a_name_escaped_like_its_neighbour_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "bad%FF.jpg").write_bytes(b"x")
    with open(os.fsencode(root) + b"/bad\xff.jpg", "wb") as out:
        out.write(b"y")
    with pytest.raises(PixelpipeError, match=r"root/bad%FF\.jpg: two files have this name"):
        open_tree(str(root))


def test_broken_links_loops_and_pipes_never_stop_a_listing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"x")
    (root / "loop.jpg").symlink_to("loop.jpg")
    (root / "dangling.jpg").symlink_to("gone.jpg")
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to("..")
    os.mkfifo(root / "pipe.jpg")
    (root / "to_pipe.jpg").symlink_to("pipe.jpg")
    tree = open_tree(str(root))
    # links that lead nowhere are listed: reading them fails, so they are accounted for
    assert tree.files == ["a.jpg", "dangling.jpg", "loop.jpg"]
    # reading a FIFO would wait forever
    assert tree.links_out == {
        "pipe.jpg": "a special file (FIFO), never read",
        "to_pipe.jpg": "a special file (FIFO), never read",
    }
    with pytest.raises(PixelpipeError, match=r"root/loop\.jpg: cannot read: OSError"):
        tree.read_bytes("loop.jpg")


@pytest.fixture
def proxied_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The moto bucket reached through a proxy the test can cut."""
    from urllib.parse import urlsplit

    from flaky import Proxy

    parts = urlsplit(s3_endpoint)
    proxy = Proxy((str(parts.hostname), int(parts.port or 80)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield proxy
    finally:
        proxy.cut()


def test_a_bucket_that_goes_away_is_one_error_after_retries(proxied_s3: Any) -> None:
    from pixelpipe.sources import SourceUnavailable

    tree = open_tree("s3://bucket/sets/a")
    proxied_s3.cut()
    with pytest.raises(
        SourceUnavailable,
        match=r"^reading s3://bucket/sets/a/one\.jpg failed after 4 tries \(Connection refused\)$",
    ):
        tree.read_bytes("one.jpg")


def test_a_missing_object_is_not_retried(proxied_s3: Any, s3_endpoint: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, skip_instance_cache=True)
    fs.pipe("bucket/gone/a.jpg", b"a")
    fs.pipe("bucket/gone/b.jpg", b"b")
    tree = open_tree("s3://bucket/gone")
    fs.rm("bucket/gone/b.jpg")
    before = len(proxied_s3.requests)
    with pytest.raises(FileNotFoundError):
        tree.access.read_bytes("b.jpg")
    assert [r for r in proxied_s3.requests[before:] if "b.jpg" in r] == ["GET /bucket/gone/b.jpg"]


@pytest.fixture
def busy_http(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server that answers 503 four times for each file, then serves it."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "a.jpg").write_bytes(b"jpeg bytes")
    seen: list[str] = []

    class Busy(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            if not self.path.endswith(".jpg") or seen.count(self.path) > 4:
                super().do_GET()
            else:
                self.send_error(503, "Slow Down")

        def do_HEAD(self) -> None:
            self.do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Busy, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_server_is_retried_with_backoff(busy_http: tuple[str, list[str]]) -> None:
    import time

    url, seen = busy_http
    tree = open_tree(f"{url}/set/")
    assert tree.files == ["a.jpg"]
    started = time.monotonic()
    assert tree.read_bytes("a.jpg") == b"jpeg bytes"
    # the first 4 requests for the file are refused (fsspec may send a HEAD and a GET per
    # try, sometimes one more request): at least one more request was served after them
    assert seen.count("/set/a.jpg") >= 5
    assert time.monotonic() - started >= 0.5 + 1.0, "waits 0.5 s, then 1 s, between tries"
