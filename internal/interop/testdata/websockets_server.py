#!/usr/bin/python3
"""Python websockets (asyncio API, 10.x) peer server for wsnursery's interop
tests. Same protocol as trio_server.py: prints {"event": "listening",
"port": N}, serves until stdin closes; /reject rejects, /ping pings,
/close-by-peer closes, anything else echoes. permessage-deflate is on, as
by default; /compress reports what was negotiated.
"""
import asyncio
import http
import sys

import websockets

from peerlib import (MAX_MESSAGE, PEER_CLOSE_CODE, PEER_CLOSE_REASON, PEER_PING,
                     REJECT_BODY, REJECT_HEADER, REJECT_HEADER_VALUE,
                     REJECT_STATUS, SUBPROTOCOL, TIMEOUT, emit, open_fields,
                     scenario_of)


def closed_event(scenario, ws):
    emit("closed", scenario=scenario, code=ws.close_code, reason=ws.close_reason or "")


async def handler(ws):
    scenario = scenario_of(ws.path)
    emit("open", scenario=scenario, subprotocol=ws.subprotocol or "",
         **open_fields(scenario, ws.response_headers.get("Sec-WebSocket-Extensions")))
    try:
        if scenario == "ping":
            waiter = await ws.ping(PEER_PING)
            await asyncio.wait_for(waiter, TIMEOUT)  # resolved by the matching pong
            emit("pong", scenario=scenario, payload=PEER_PING.hex())
            await ws.send("pinged")
        elif scenario == "close-by-peer":
            await ws.close(PEER_CLOSE_CODE, PEER_CLOSE_REASON)
            closed_event(scenario, ws)
            return
        while True:
            await ws.send(await ws.recv())
    except websockets.ConnectionClosed:
        await ws.wait_closed()
        closed_event(scenario, ws)


async def process_request(path, headers):
    if scenario_of(path) == "reject":
        emit("rejected", scenario="reject")
        return (http.HTTPStatus(REJECT_STATUS), [(REJECT_HEADER, REJECT_HEADER_VALUE)], REJECT_BODY)
    return None


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL],
                                process_request=process_request, max_size=MAX_MESSAGE,
                                close_timeout=TIMEOUT) as server:
        emit("listening", port=server.sockets[0].getsockname()[1])
        # Serve until the test closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
