"""A real S3 API for tests: moto's server on 127.0.0.1, and uploading a folder to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's S3 server on a free port of 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def upload(endpoint: str, folder: Path, bucket: str, prefix: str, secret: str) -> Any:
    """Copy ``folder`` to ``s3://bucket/prefix/``; returns the s3fs filesystem."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key="testing",
        secret=secret,
        client_kwargs={"endpoint_url": endpoint},
        skip_instance_cache=True,
    )
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.pipe(f"{bucket}/{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    return fs
