#!/usr/bin/python3
"""websocket-client (module "websocket") peer client for wsnursery's interop
tests. Usage: wsclient_client.py URL SCENARIO; scenarios as in
trio_client.py.

Scenario "compress" echoes like "echo" and reports the negotiated
extensions: this library offers none. This library is synchronous: it answers pings only while a recv call runs,
replies to a Close frame with 1000 rather than echoing the code, and its
rejection exception carries status and headers but not the body.
"""
import struct

import websocket
from websocket import ABNF

from peerlib import (OFFERED, PEER_CLOSE_CODE, PEER_CLOSE_REASON, PEER_PING,
                     REJECT_HEADER, TIMEOUT, emit, header_value, open_fields,
                     usage_client)


def parse_close(data):
    if len(data) < 2:
        return 1005, ""
    return struct.unpack("!H", data[:2])[0], data[2:].decode("utf-8")


def echo_until_closed(ws, scenario):
    while True:
        opcode, data = ws.recv_data()  # answers pings while it waits
        if opcode == ABNF.OPCODE_CLOSE:  # the library has already replied 1000
            code, reason = parse_close(data)
            emit("closed", scenario=scenario, code=code, reason=reason)
            return
        if opcode == ABNF.OPCODE_TEXT:
            ws.send(data.decode("utf-8"))
        else:
            ws.send_binary(data)


def main(url, scenario):
    subs = OFFERED if scenario == "subprotocol" else None
    try:
        ws = websocket.create_connection(url, timeout=TIMEOUT, subprotocols=subs)
    except websocket.WebSocketBadStatusException as e:
        emit("rejected", scenario=scenario, status=e.status_code,
             header=header_value((e.resp_headers or {}).items(), REJECT_HEADER))
        return
    emit("open", scenario=scenario, subprotocol=ws.getsubprotocol() or "",
         **open_fields(scenario, (ws.getheaders() or {}).get("sec-websocket-extensions")))
    try:
        if scenario == "ping":
            ws.ping(PEER_PING)
            opcode, data = ws.recv_data(control_frame=True)
            if opcode != ABNF.OPCODE_PONG:
                emit("error", scenario=scenario, detail="expected a pong, got opcode %d" % opcode)
                return
            emit("pong", scenario=scenario, payload=data.hex())
            ws.send("pinged")
        elif scenario == "close-by-peer":
            ws.send_close(PEER_CLOSE_CODE, PEER_CLOSE_REASON.encode("utf-8"))
            while True:
                frame = ws.recv_frame()
                if frame.opcode == ABNF.OPCODE_CLOSE:
                    code, reason = parse_close(frame.data)
                    emit("closed", scenario=scenario, code=code, reason=reason)
                    return
        echo_until_closed(ws, scenario)
    finally:
        ws.shutdown()


if __name__ == "__main__":
    main(*usage_client())
