"""Shared constants and output for wsnursery's Python interop peers.

Every peer prints what it observed as JSON lines on stdout (one object per
line, key "event" first); the Go tests parse them. The values below are
mirrored in the Go tests (interop/scenario_test.go).
"""
import json
import sys

SUBPROTOCOL = "wsnursery.v2"            # what servers select when offered
OFFERED = ["chat.unknown", SUBPROTOCOL]  # what clients offer in "subprotocol"
PEER_PING = b"peer-ping\x00\xff"        # payload of the ping a peer sends
PEER_CLOSE_CODE = 4002                   # what a peer closes with in "close-by-peer"
PEER_CLOSE_REASON = "peer-bye \u2713"
REJECT_STATUS = 403                      # how a peer server rejects /reject
REJECT_HEADER = "X-Wsnursery-Reason"
REJECT_HEADER_VALUE = "peer-says-no"
REJECT_BODY = b"rejected by peer"
MAX_MESSAGE = 4 << 20                    # peers accept messages up to 4 MiB
TIMEOUT = 10                             # seconds for any single wait


def emit(event, **fields):
    """Print one observation as a JSON line and flush it at once."""
    print(json.dumps(dict(event=event, **fields)), flush=True)


def open_fields(scenario, extensions):
    """Extra fields of the "open" event: in scenario "compress", the
    negotiated Sec-WebSocket-Extensions as detail "extensions=..."."""
    if scenario != "compress":
        return {}
    return {"detail": "extensions=" + (extensions or "")}


def scenario_of(path):
    """The scenario a request path names: "/close-by-peer?x" -> "close-by-peer"."""
    return path.split("?", 1)[0].strip("/")


def header_value(headers, name):
    """Find a header in a list of (name, value) pairs of str or bytes."""
    for k, v in headers or ():
        if isinstance(k, bytes):
            k = k.decode("latin-1")
        if isinstance(v, bytes):
            v = v.decode("latin-1")
        if k.lower() == name.lower():
            return v
    return ""


def usage_client():
    if len(sys.argv) != 3:
        sys.exit("usage: %s URL SCENARIO" % sys.argv[0])
    return sys.argv[1], sys.argv[2]
