#!/usr/bin/env python3
"""Kernel time a message of a raw Mobility Header send: the IPPROTO_MH socket
the LMA uses against an IPPROTO_RAW socket with our own IPv6 header
(IPV6_HDRINCL). BENCHMARKS.md, "IPV6_HDRINCL measured, and slower".

    sudo python3 docs/bench/raw_mh_hdrincl.py [rounds] [messages]

Two namespaces of its own (pmipx-a, pmipx-b) on a veth, removed at the end.
"""
import os, resource, socket, struct, subprocess, sys

A, B = "pmipx-a", "pmipx-b"
SRC, DST = "fd00:5b::1", "fd00:5b::2"


def sh(*args):
    subprocess.run(args, check=True)


def csum(data):
    data = data + b"\0" * (len(data) % 2)
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def send(mode, n):
    """In namespace A: n messages, one sendto each; kernel ns a message."""
    src, dst = (socket.inet_pton(socket.AF_INET6, a) for a in (SRC, DST))
    mh = bytearray(40)  # a PBA-sized Mobility Header: no next header, 5 units, type 6
    mh[0], mh[1], mh[2] = 59, 4, 6
    pseudo = src + dst + struct.pack("!I3xB", len(mh), 135)
    mh[4:6] = struct.pack("!H", csum(pseudo + bytes(mh)))
    if mode == "mh":
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
        s.bind((SRC, 0))
        pkt, addr = bytes(mh), (DST, 0)
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        hdr = struct.pack("!IHBB", 6 << 28, len(mh), 135, 64) + src + dst
        pkt, addr = hdr + bytes(mh), (DST, 135)  # the port: the flow's protocol
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for _ in range(n):
        s.sendto(pkt, addr)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0) / n * 1e9


def delivered():
    out = subprocess.run(["ip", "netns", "exec", B, "cat", "/proc/net/snmp6"],
                         check=True, capture_output=True, text=True).stdout
    return int(next(l.split()[1] for l in out.splitlines() if l.startswith("Ip6InDelivers")))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        print(send(sys.argv[2], int(sys.argv[3])))
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    drain = None
    try:
        sh("ip", "netns", "add", A)
        sh("ip", "netns", "add", B)
        sh("ip", "link", "add", "va", "netns", A, "type", "veth", "peer", "vb", "netns", B)
        for ns, dev, addr in ((A, "va", SRC), (B, "vb", DST)):
            sh("ip", "-n", ns, "addr", "add", addr + "/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # The neighbour resolved before the first message (else the first
        # round's messages wait on it and most are dropped).
        subprocess.run(["ip", "netns", "exec", A, "ping", "-6", "-c", "1", "-W", "5", DST], check=True, stdout=subprocess.DEVNULL)
        drain = subprocess.Popen(["ip", "netns", "exec", B, sys.executable, "-c",
                                  "import socket\n"
                                  "s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,135)\n"
                                  f"s.bind(('{DST}',0))\n"
                                  "s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1<<24)\n"
                                  "while True: s.recv(2048)\n"])
        res = {"mh": [], "hdrincl": []}
        for _ in range(rounds):
            for mode in res:
                before = delivered()
                out = subprocess.run(["ip", "netns", "exec", A, "taskset", "-c", "0", sys.executable,
                                      __file__, "--send", mode, str(n)],
                                     check=True, capture_output=True, text=True).stdout
                got = delivered() - before
                res[mode].append(float(out))
                print(f"{mode:8} {float(out):7.0f} ns of kernel time a message, {got} delivered")
        for mode, v in res.items():
            v.sort()
            print(f"{mode:8} median {v[len(v) // 2]:.0f} ns ({v[0]:.0f}-{v[-1]:.0f})")
    finally:
        if drain:
            drain.kill()
            drain.wait()
        for ns in (A, B):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
