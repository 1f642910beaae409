"""Drives one WebSocket connection for tests/websocket.rs with the `websockets` client
(PyPI, installed by scripts/python-env), so that Bastion's WebSocket binding is spoken to
by a client the project did not write.

Usage: ws_driver.py URL SUBPROTOCOL[,SUBPROTOCOL...]

Prints one JSON line for the upgrade: {"subprotocol": NAME} or {"refused": STATUS}. Then
reads commands, one JSON object a line, and answers each with one JSON line:

  {"send": PRIMITIVE}   sends the primitive in the negotiated serialization (JSON in a
                        text frame; CBOR, with cbor2, in a binary frame) -> {"sent": true}
  {"text": STRING}      sends STRING as a text frame as is          -> {"sent": true}
  {"binary": HEX}       sends the bytes as a binary frame as is     -> {"sent": true}
  {"recv": SECONDS}     waits for one message -> {"message": PRIMITIVE}, or
                        {"closed": CODE, "reason": TEXT}, or {"timeout": true}
"""

import json
import sys

import cbor2
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    url, offered = sys.argv[1], sys.argv[2].split(",")
    try:
        with connect(url, subprotocols=offered, open_timeout=10, max_size=None) as ws:
            serve(ws)
    except InvalidStatus as refused:
        out({"refused": refused.response.status_code})


def serve(ws):
    out({"subprotocol": ws.subprotocol})
    cbor = ws.subprotocol is not None and ws.subprotocol.lower().endswith("cbor")
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if "send" in command:
                if cbor:
                    ws.send(cbor2.dumps(command["send"]))
                else:
                    ws.send(json.dumps(command["send"]))
                out({"sent": True})
            elif "text" in command:
                ws.send(command["text"])
                out({"sent": True})
            elif "binary" in command:
                ws.send(bytes.fromhex(command["binary"]))
                out({"sent": True})
            elif "recv" in command:
                try:
                    message = ws.recv(timeout=command["recv"])
                except TimeoutError:
                    out({"timeout": True})
                    continue
                if isinstance(message, bytes):
                    out({"message": cbor2.loads(message), "frame": "binary"})
                else:
                    out({"message": json.loads(message), "frame": "text"})
        except ConnectionClosed as closed:
            frame = closed.rcvd
            out({
                "closed": frame.code if frame else None,
                "reason": frame.reason if frame else "",
            })


if __name__ == "__main__":
    main()
