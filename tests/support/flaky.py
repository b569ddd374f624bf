"""A TCP proxy on 127.0.0.1 in front of a real server, for tests of network failures.

:class:`Proxy` forwards every connection to its backend (a moto S3 server, an HTTP
server) and records each request line it sees. It can cut the network for real: after
``die_after`` object reads, or when :meth:`Proxy.cut` is called, it closes its listening
socket and every open connection, so clients get "connection refused" from then on, as
from a bucket whose server went away in the middle of a job.
"""

from __future__ import annotations

import contextlib
import socket
import threading

_METHODS = (b"GET ", b"HEAD ", b"PUT ", b"POST ", b"DELETE ")


class Proxy:
    """Forward ``127.0.0.1:<port>`` to ``backend``; cut everything on demand.

    Args:
        backend: ``(host, port)`` of the real server.
        die_after: Cut the network when a request for an object arrives after this many
            object reads (``GET`` of a key, not a listing); ``None``: never by itself.
    """

    def __init__(self, backend: tuple[str, int], die_after: int | None = None) -> None:
        self.backend = backend
        self.die_after = die_after
        self.requests: list[str] = []
        self.reads = 0
        self.dead = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Stop listening and close every connection: the server is gone."""
        with self._lock:
            self.dead = True
            sockets, self._sockets = self._sockets, []
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.backend)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self.dead:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if upstream and data.startswith(_METHODS) and self._count(data):
                    self.cut()
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _count(self, data: bytes) -> bool:
        """Record a request; True when it is a read past ``die_after`` (cut, do not send)."""
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        method, target = [*line.split(" "), "", ""][:2]
        with self._lock:
            self.requests.append(f"{method} {target}")
            if method != "GET" or "list-type=" in target or "?location" in target:
                return False
            self.reads += 1
            return self.die_after is not None and self.reads > self.die_after
