#!/usr/bin/python3
"""Cluster services of the mini cluster (tests/cluster/README.md).

Runs inside the services network namespace, one asyncio process:
  HTTP  on --http ports (default 80):
        GET /bytes/N   N bytes of a fixed pattern (large downloads)
        POST /echo     the request body back
        anything else  "cluster-api <path>"
        keep-alive, pipelining, Content-Length and chunked request bodies.
  TCP echo on --tcp-echo ports (default 7 and 5432).
  UDP echo on --udp-echo ports (default 7).
Every socket listens on [::] dual stack, so every address of the namespace
answers. SIGTERM ends it.
"""
import argparse
import asyncio
import os
import signal
import socket
import sys

PATTERN = bytes(range(256)) * 256  # 64 KiB


def listen_sock(port, kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    if kind == socket.SOCK_STREAM:
        s.listen(1024)
    s.setblocking(False)
    return s


class TcpEcho(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=1 << 20, low=256 << 10)

    def data_received(self, data):
        self.t.write(data)

    def eof_received(self):
        return False  # close once written

    def pause_writing(self):
        self.t.pause_reading()

    def resume_writing(self):
        self.t.resume_reading()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        self.t.sendto(data, addr)


async def read_body(reader, headers):
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        parts = []
        while True:
            line = await reader.readline()
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readline()
    n = int(headers.get("content-length", "0") or "0")
    return await reader.readexactly(n) if n else b""


async def http_conn(reader, writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            if line in (b"\r\n", b"\n"):
                continue
            parts = line.decode("latin-1").split()
            if len(parts) != 3:
                break
            method, target, version = parts
            headers = {}
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            conn = headers.get("connection", "").lower()
            keep = (version == "HTTP/1.1" and "close" not in conn) or "keep-alive" in conn
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await read_body(reader, headers)
            path = target.split("?", 1)[0]
            status = "200 OK"
            chunks = None
            if path.startswith("/bytes/"):
                try:
                    size = int(path[len("/bytes/"):])
                except ValueError:
                    size = -1
                if size < 0:
                    status, payload = "400 Bad Request", b"bad size\n"
                else:
                    payload = None
                    chunks = size
            elif path == "/echo" and method == "POST":
                payload = body
            else:
                payload = ("cluster-api " + target).encode()
            length = chunks if chunks is not None else len(payload)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n"
                f"Server: cluster-api\r\nConnection: {'keep-alive' if keep else 'close'}\r\n\r\n"
            )
            writer.write(head.encode())
            if method != "HEAD":
                if chunks is not None:
                    left = chunks
                    while left > 0:
                        n = min(left, len(PATTERN))
                        writer.write(PATTERN[:n])
                        left -= n
                        await writer.drain()
                else:
                    writer.write(payload)
            await writer.drain()
            if not keep:
                break
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=int, action="append")
    ap.add_argument("--tcp-echo", type=int, action="append")
    ap.add_argument("--udp-echo", type=int, action="append")
    ap.add_argument("--udp-addr", action="append",
                    help="bind the UDP echo to this address (repeat); default: wildcard")
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    loop = asyncio.get_running_loop()
    servers = []
    for port in a.http or [80]:
        servers.append(await asyncio.start_server(http_conn, sock=listen_sock(port, socket.SOCK_STREAM),
                                                  limit=1 << 20))
    for port in a.tcp_echo or [7, 5432]:
        servers.append(await loop.create_server(TcpEcho, sock=listen_sock(port, socket.SOCK_STREAM)))
    for port in a.udp_echo or [7]:
        # One socket per address: a wildcard UDP socket answers from the
        # route's preferred source, not from the address the client sent
        # to, and a connected client socket drops such replies.
        for addr in a.udp_addr or []:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.bind((addr, port))
            s.setblocking(False)
            await loop.create_datagram_endpoint(UdpEcho, sock=s)
        if not a.udp_addr:
            await loop.create_datagram_endpoint(UdpEcho, sock=listen_sock(port, socket.SOCK_DGRAM))
    if a.pidfile:
        with open(a.pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(a.pidfile + ".tmp", a.pidfile)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("services: ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)
