"""A few frames of docs/PROTOCOL.md written by hand, for tests that must
send what podenv itself never would (malformed input)."""
import struct

HEADER = struct.Struct("<IHHQ")  # length, type, flags, id


def hello_frame(token, name=b"e2e raw client"):
    payload = b"podenv\r\n" + struct.pack("<HHQI", 1, 1, 0x7f, 256 * 1024) + token
    payload += struct.pack("<I", len(name)) + name + b"\0"
    return HEADER.pack(len(payload), 0x0001, 0, 0) + payload


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def read_frame(s):
    length, t, flags, ident = HEADER.unpack(recv_exact(s, HEADER.size))
    return t, flags, ident, recv_exact(s, length)
