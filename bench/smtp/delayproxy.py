"""A TCP proxy that delays what the server sends back by a fixed time:
every round trip through it takes that much longer, as with a database
on another machine. bench/smtp/run puts it between carteiro and
PostgreSQL (PG_RTT_MS). Bytes keep their order; the delay is at least the
given one (asyncio's timers have about 1 ms resolution).

    /usr/bin/python3 delayproxy.py LISTEN_PORT TARGET_PORT DELAY_MS
"""

import asyncio
import sys


async def pump(reader, writer, delay):
    """Copy reader to writer; delay > 0 holds each chunk that long."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def sender():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.ensure_future(sender())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await queue.put((loop.time() + delay, data))
    except ConnectionError:
        pass
    await queue.put((0, None))
    try:
        await task
    except ConnectionError:
        pass


async def main(listen_port, target_port, delay):
    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection(
                "127.0.0.1", target_port)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pump(creader, swriter, 0),
                             pump(sreader, cwriter, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]),
                     float(sys.argv[3]) / 1000.0))
