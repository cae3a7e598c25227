"""A loopback TCP proxy in front of one of the bench's servers, to break callrec's connections
at chosen moments (AMI, ARI's HTTP and websocket): what a network blip or a stalled PBX does."""

from __future__ import annotations

import asyncio
import threading
import time

from testbench.procs import free_port


class CuttingProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``.

    ``cut_after``: the first connection whose client sends these bytes is cut as soon as they are
    passed on, before any reply can come back. ``cut(block_s)``: every connection is cut now and
    new ones are refused for ``block_s`` seconds. Runs its own event loop in a thread; use it as
    a context manager."""

    def __init__(self, target: int, cut_after: bytes | None = None) -> None:
        self.target, self.port, self.cut_after = target, free_port(), cut_after
        self.pattern_cut = False
        self._blocked_until = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", self.port), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def cut(self, block_s: float = 0.0) -> None:
        self._blocked_until = time.monotonic() + block_s
        self._loop.call_soon_threadsafe(self._abort_all)

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._blocked_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:  # the server is down (an Asterisk crash): the client sees a reset
            writer.transport.abort()
            return
        both = (writer, up_writer)
        self._writers.update(both)
        try:
            await asyncio.gather(self._pipe(reader, up_writer, both, True),
                                 self._pipe(up_reader, writer, both, False))
        except asyncio.CancelledError:
            # Cancelled by _shutdown. It ends here, not by re-raising: the stream server's
            # done-callback asks a cancelled task for its exception() and logs the
            # CancelledError that raises as an error (asyncio/streams.py, Python 3.11).
            return

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    both: tuple[asyncio.StreamWriter, ...], from_client: bool) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
                if from_client and self.cut_after and self.cut_after in data \
                        and not self.pattern_cut:
                    self.pattern_cut = True
                    break
        except ConnectionError:
            pass
        finally:
            for writer in both:
                writer.close()
                self._writers.discard(writer)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
