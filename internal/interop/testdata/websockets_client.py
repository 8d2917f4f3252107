#!/usr/bin/python3
"""Python websockets (asyncio API, 10.x) peer client for wsnursery's interop
tests. Usage: websockets_client.py URL SCENARIO; scenarios as in
trio_client.py, plus "compress": echo, reporting the negotiated extensions
(permessage-deflate is offered, as by default). The rejection body is not exposed by this library
(InvalidStatusCode carries the status and headers only).
"""
import asyncio

import websockets

from peerlib import (MAX_MESSAGE, OFFERED, PEER_CLOSE_CODE, PEER_CLOSE_REASON,
                     PEER_PING, REJECT_HEADER, TIMEOUT, emit, open_fields,
                     usage_client)


def closed_event(scenario, ws):
    emit("closed", scenario=scenario, code=ws.close_code, reason=ws.close_reason or "")


async def main(url, scenario):
    subs = OFFERED if scenario == "subprotocol" else None
    try:
        ws = await asyncio.wait_for(
            websockets.connect(url, subprotocols=subs, max_size=MAX_MESSAGE, close_timeout=TIMEOUT),
            TIMEOUT)
    except websockets.InvalidStatusCode as e:
        emit("rejected", scenario=scenario, status=e.status_code,
             header=e.headers.get(REJECT_HEADER, ""))
        return
    emit("open", scenario=scenario, subprotocol=ws.subprotocol or "",
         **open_fields(scenario, ws.response_headers.get("Sec-WebSocket-Extensions")))
    try:
        if scenario == "ping":
            waiter = await ws.ping(PEER_PING)
            await asyncio.wait_for(waiter, TIMEOUT)
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


if __name__ == "__main__":
    asyncio.run(main(*usage_client()))
