#!/usr/bin/python3
"""trio-websocket peer server for wsnursery's interop tests.

Binds 127.0.0.1 on a free port, prints {"event": "listening", "port": N},
then serves until its stdin closes. Behaviour by request path:
  /reject         reject with 403, a header and a body
  /ping           ping the client with PEER_PING, report the pong, send
                  "pinged", then echo
  /close-by-peer  close with PEER_CLOSE_CODE/REASON, report the echo
  anything else   echo every message back with its type
Subprotocol SUBPROTOCOL is selected whenever the client offers it.
"""
import sys
from functools import partial

import trio
from trio_websocket import ConnectionClosed, serve_websocket

from peerlib import (MAX_MESSAGE, PEER_CLOSE_CODE, PEER_CLOSE_REASON, PEER_PING,
                     REJECT_BODY, REJECT_HEADER, REJECT_HEADER_VALUE,
                     REJECT_STATUS, SUBPROTOCOL, TIMEOUT, emit, scenario_of)


async def handler(request):
    scenario = scenario_of(request.path)
    if scenario == "reject":
        await request.reject(REJECT_STATUS, extra_headers=[
            (REJECT_HEADER.encode(), REJECT_HEADER_VALUE.encode())], body=REJECT_BODY)
        emit("rejected", scenario=scenario)
        return
    sub = SUBPROTOCOL if SUBPROTOCOL in request.proposed_subprotocols else None
    ws = await request.accept(subprotocol=sub)
    emit("open", scenario=scenario, subprotocol=ws.subprotocol or "")
    try:
        if scenario == "ping":
            with trio.fail_after(TIMEOUT):
                await ws.ping(PEER_PING)  # returns once the matching pong came
            emit("pong", scenario=scenario, payload=PEER_PING.hex())
            await ws.send_message("pinged")
        elif scenario == "close-by-peer":
            with trio.fail_after(TIMEOUT):
                await ws.aclose(PEER_CLOSE_CODE, PEER_CLOSE_REASON)
            emit("closed", scenario=scenario, code=ws.closed.code, reason=ws.closed.reason or "")
            return
        while True:
            await ws.send_message(await ws.get_message())
    except ConnectionClosed as e:
        emit("closed", scenario=scenario, code=e.reason.code, reason=e.reason.reason or "")


async def main():
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(
            serve_websocket, handler, "127.0.0.1", 0, None,
            max_message_size=MAX_MESSAGE, disconnect_timeout=TIMEOUT))
        emit("listening", port=server.port)
        # Serve until the test closes our stdin.
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
