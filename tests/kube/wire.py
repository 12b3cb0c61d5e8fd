"""Wire formats the fake API server speaks after an HTTP upgrade.

WebSocket (RFC 6455) frames, both the server side (unmasked) and the client
side (masked, for tests), and SPDY/3.1 frames with their zlib-compressed
header blocks (the SPDY/3 dictionary), as k8s.io/apimachinery and
moby/spdystream use them for port-forward. Standard library only.
"""
import base64
import hashlib
import os
import struct
import zlib

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload, mask=False, fin=True):
    """One WebSocket frame; clients must mask, servers must not."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + ws_mask(payload, key)


def ws_mask(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def ws_parse(buf):
    """Parse one frame from the front of buf: (fin, opcode, payload, masked, used) or None."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos:pos + 4])
        pos += 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    if masked:
        payload = ws_mask(payload, key)
    return bool(b0 & 0x80), b0 & 0x0F, payload, masked, pos + n


# --- SPDY/3.1 ------------------------------------------------------------------------------

# The SPDY/3 header-compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1):
# length-prefixed words, then a run of common strings. 1423 bytes, adler32 0xe3c6a7c2.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date "
    "etag expect expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
    "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status").split() + [
    "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
SPDY_DICT = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
assert len(SPDY_DICT) == 1423 and zlib.adler32(SPDY_DICT) == 0xE3C6A7C2

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED, RST_CANCEL, RST_INTERNAL = 1, 2, 3, 5, 6


class SpdyCodec:
    """Frame parsing and building for one SPDY/3.1 connection (one zlib
    context per direction for the whole connection)."""

    def __init__(self):
        self._inflate = zlib.decompressobj(zdict=SPDY_DICT)
        self._deflate = zlib.compressobj(9, zdict=SPDY_DICT)

    @staticmethod
    def parse(buf):
        """(control, type_or_stream_id, flags, payload, used) for the first frame, or None."""
        if len(buf) < 8:
            return None
        length = int.from_bytes(buf[5:8], "big")
        if len(buf) < 8 + length:
            return None
        flags = buf[4]
        payload = bytes(buf[8:8 + length])
        if buf[0] & 0x80:
            ftype = struct.unpack_from("!H", buf, 2)[0]
            return True, ftype, flags, payload, 8 + length
        sid = struct.unpack_from("!I", buf, 0)[0] & 0x7FFFFFFF
        return False, sid, flags, payload, 8 + length

    def headers(self, block):
        """Decode a compressed header block into {lowercase name: value}."""
        raw = self._inflate.decompress(block)
        out, pos = {}, 4
        (count,) = struct.unpack_from("!I", raw, 0)
        for _ in range(count):
            (n,) = struct.unpack_from("!I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode("latin-1")
            pos += 4 + n
            (n,) = struct.unpack_from("!I", raw, pos)
            value = raw[pos + 4:pos + 4 + n].decode("latin-1")
            pos += 4 + n
            out[name.lower()] = value
        return out

    def header_block(self, headers):
        raw = struct.pack("!I", len(headers))
        for k, v in headers.items():
            k, v = k.lower().encode(), v.encode()
            raw += struct.pack("!I", len(k)) + k + struct.pack("!I", len(v)) + v
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def control(ftype, flags, payload):
        return struct.pack("!HHI", 0x8003, ftype, (flags << 24) | len(payload)) + payload

    @staticmethod
    def data(sid, payload, fin=False):
        return struct.pack("!II", sid, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload

    def syn_stream(self, sid, headers, fin=False):
        payload = struct.pack("!IIBB", sid, 0, 0, 0) + self.header_block(headers)
        return self.control(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def syn_reply(self, sid, headers=None, fin=False):
        return self.control(SYN_REPLY, FLAG_FIN if fin else 0,
                            struct.pack("!I", sid) + self.header_block(headers or {}))

    @staticmethod
    def rst_stream(sid, status=RST_CANCEL):
        return SpdyCodec.control(RST_STREAM, 0, struct.pack("!II", sid, status))

    @staticmethod
    def goaway(last_sid=0, status=0):
        return SpdyCodec.control(GOAWAY, 0, struct.pack("!II", last_sid, status))
