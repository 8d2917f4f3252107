#!/usr/bin/python3
"""trio-websocket peer client for wsnursery's interop tests.

Usage: trio_client.py URL SCENARIO. Scenarios:
  echo, close-by-go  echo every message back until the server closes
  subprotocol        offer OFFERED, report the selection, then echo
  ping               ping the server with PEER_PING, report the pong, send
                     "pinged", then echo
  close-by-peer      close with PEER_CLOSE_CODE/REASON, report the echo
  reject             report the rejection's status, header and body
Always reports how the connection closed.
"""
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from peerlib import (MAX_MESSAGE, OFFERED, PEER_CLOSE_CODE, PEER_CLOSE_REASON,
                     PEER_PING, REJECT_HEADER, TIMEOUT, emit, header_value,
                     usage_client)


async def main(url, scenario):
    subs = OFFERED if scenario == "subprotocol" else None
    try:
        async with open_websocket_url(url, subprotocols=subs, max_message_size=MAX_MESSAGE,
                                      connect_timeout=TIMEOUT, disconnect_timeout=TIMEOUT) as ws:
            emit("open", scenario=scenario, subprotocol=ws.subprotocol or "")
            if scenario == "ping":
                with trio.fail_after(TIMEOUT):
                    await ws.ping(PEER_PING)
                emit("pong", scenario=scenario, payload=PEER_PING.hex())
                await ws.send_message("pinged")
            elif scenario == "close-by-peer":
                with trio.fail_after(TIMEOUT):
                    await ws.aclose(PEER_CLOSE_CODE, PEER_CLOSE_REASON)
                emit("closed", scenario=scenario, code=ws.closed.code, reason=ws.closed.reason or "")
                return
            try:
                while True:
                    await ws.send_message(await ws.get_message())
            except ConnectionClosed as e:
                emit("closed", scenario=scenario, code=e.reason.code, reason=e.reason.reason or "")
    except ConnectionRejected as e:
        emit("rejected", scenario=scenario, status=e.status_code,
             header=header_value(e.headers, REJECT_HEADER),
             body=(e.body or b"").decode("utf-8", "replace"))


if __name__ == "__main__":
    trio.run(main, *usage_client())
