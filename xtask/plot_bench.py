#!/usr/bin/env python3
"""Plots of the benchmark results, next to BENCHMARKS.md.

    python3 xtask/plot_bench.py [RESULTS_DIR] [OUT_DIR]     (default: bench-results docs/bench)

Reads RESULTS_DIR/{throughput,tcp,scale}.json (written by `cargo xtask bench`)
and writes OUT_DIR/throughput.png and OUT_DIR/scale.png, plus a copy of the
JSON they were drawn from. It draws with a small built-in rasteriser and a
5x7 bitmap font (stdlib only: zlib + struct): the machines this runs on may
have no way to install matplotlib (no network during a session).
"""
import json
import os
import shutil
import struct
import sys
import zlib

CASE_ORDER = ["veth", "redirect", "min-fwd", "fastpath-native", "fastpath-generic", "fastpath-tc", "kernel"]
CASE_LABEL = {
    "veth": "straight veth pair",
    "redirect": "XDP redirect ceiling",
    "min-fwd": "min XDP forwarder",
    "fastpath-native": "fast path native",
    "fastpath-generic": "fast path generic",
    "fastpath-tc": "fast path TC",
    "kernel": "kernel forwarding",
}
COLORS = [(120, 120, 120), (31, 119, 180), (23, 190, 207), (214, 39, 40), (255, 127, 14), (44, 160, 44),
          (148, 103, 189), (140, 86, 75)]

# ---- a tiny raster canvas with a 5x7 font ----

FONT = {
    "A": "0E 11 11 1F 11 11 11", "B": "1E 11 11 1E 11 11 1E", "C": "0E 11 10 10 10 11 0E",
    "D": "1E 11 11 11 11 11 1E", "E": "1F 10 10 1E 10 10 1F", "F": "1F 10 10 1E 10 10 10",
    "G": "0E 11 10 17 11 11 0F", "H": "11 11 11 1F 11 11 11", "I": "0E 04 04 04 04 04 0E",
    "J": "07 02 02 02 02 12 0C", "K": "11 12 14 18 14 12 11", "L": "10 10 10 10 10 10 1F",
    "M": "11 1B 15 15 11 11 11", "N": "11 11 19 15 13 11 11", "O": "0E 11 11 11 11 11 0E",
    "P": "1E 11 11 1E 10 10 10", "Q": "0E 11 11 11 15 12 0D", "R": "1E 11 11 1E 14 12 11",
    "S": "0F 10 10 0E 01 01 1E", "T": "1F 04 04 04 04 04 04", "U": "11 11 11 11 11 11 0E",
    "V": "11 11 11 11 11 0A 04", "W": "11 11 11 15 15 15 0A", "X": "11 11 0A 04 0A 11 11",
    "Y": "11 11 11 0A 04 04 04", "Z": "1F 01 02 04 08 10 1F",
    "0": "0E 11 13 15 19 11 0E", "1": "04 0C 04 04 04 04 0E", "2": "0E 11 01 02 04 08 1F",
    "3": "1F 02 04 02 01 11 0E", "4": "02 06 0A 12 1F 02 02", "5": "1F 10 1E 01 01 11 0E",
    "6": "06 08 10 1E 11 11 0E", "7": "1F 01 02 04 08 08 08", "8": "0E 11 11 0E 11 11 0E",
    "9": "0E 11 11 0F 01 02 0C", " ": "00 00 00 00 00 00 00", ".": "00 00 00 00 00 0C 0C",
    ",": "00 00 00 00 0C 04 08", ":": "00 0C 0C 00 0C 0C 00", "-": "00 00 00 1F 00 00 00",
    "+": "00 04 04 1F 04 04 00", "(": "02 04 08 08 08 04 02", ")": "08 04 02 02 02 04 08",
    "/": "00 01 02 04 08 10 00", "%": "18 19 02 04 08 13 03", "=": "00 00 1F 00 1F 00 00",
    "\u00d7": "00 00 11 0A 04 0A 11", ";": "00 0C 0C 00 0C 04 08", "_": "00 00 00 00 00 00 1F", ">": "08 04 02 01 02 04 08",
    "<": "02 04 08 10 08 04 02", "~": "00 00 08 15 02 00 00", "*": "00 04 15 0E 15 04 00",
}


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray([255]) * (w * h * 3)

    def rect(self, x0, y0, x1, y1, c):
        x0, x1 = sorted((int(x0), int(x1)))
        y0, y1 = sorted((int(y0), int(y1)))
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.w), min(y1, self.h)
        row = bytes(c) * (x1 - x0)
        for y in range(y0, y1):
            i = (y * self.w + x0) * 3
            self.px[i:i + len(row)] = row

    def line(self, x0, y0, x1, y1, c, t=1):
        x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for k in range(n + 1):
            x = x0 + (x1 - x0) * k // n
            y = y0 + (y1 - y0) * k // n
            self.rect(x - t // 2, y - t // 2, x - t // 2 + t, y - t // 2 + t, c)

    def text(self, x, y, s, c=(0, 0, 0), scale=2, anchor="left"):
        w = self.text_width(s, scale)
        if anchor == "center":
            x -= w // 2
        elif anchor == "right":
            x -= w
        for ch in s:
            g = FONT.get(ch) or FONT.get(ch.upper()) or FONT["*"]
            for r, hexrow in enumerate(g.split()):
                bits = int(hexrow, 16)
                for col in range(5):
                    if bits & (0x10 >> col):
                        self.rect(x + col * scale, y + r * scale, x + (col + 1) * scale, y + (r + 1) * scale, c)
            x += 6 * scale
        return w

    @staticmethod
    def text_width(s, scale=2):
        return len(s) * 6 * scale

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

        data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
        data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
        with open(path, "wb") as f:
            f.write(data)


def nice_max(v):
    import math
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]:
        if m * e >= v:
            return m * e
    return 10 * e


def bar_panel(cv, x0, y0, w, h, title, groups, series, values, errs, unit, colors, fmt="%.2f"):
    """groups: labels on x; series: labels per bar; values[g][s]; errs[g][s] = (lo, hi)."""
    cv.text(x0 + w // 2, y0, title, scale=2, anchor="center")
    top = y0 + 48
    bottom = y0 + h - 40
    left = x0 + 60
    right = x0 + w - 10
    vmax = nice_max(max([hi for g in errs for (_, hi) in g] + [v for g in values for v in g] + [1e-9]) * 1.12)
    for k in range(6):
        v = vmax * k / 5
        y = bottom - (bottom - top) * k / 5
        cv.line(left, y, right, y, (225, 225, 225))
        cv.text(left - 6, int(y) - 7, ("%g" % round(v, 3)), scale=2, anchor="right")
    cv.line(left, top, left, bottom, (0, 0, 0))
    cv.line(left, bottom, right, bottom, (0, 0, 0))
    cv.text(x0 + 4, y0 + 22, unit, scale=2)
    gw = (right - left) / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    for gi, g in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        cv.text(int(left + gi * gw + gw / 2), bottom + 10, g, scale=2, anchor="center")
        for si in range(len(series)):
            v = values[gi][si]
            if v is None:
                continue
            bx = gx + si * bw
            y = bottom - (bottom - top) * v / vmax
            cv.rect(bx + 1, y, bx + bw - 1, bottom, colors[si % len(colors)])
            lo, hi = errs[gi][si]
            ylo = bottom - (bottom - top) * lo / vmax
            yhi = bottom - (bottom - top) * hi / vmax
            cx = bx + bw / 2
            cv.line(cx, ylo, cx, yhi, (0, 0, 0))
            cv.line(cx - 3, ylo, cx + 3, ylo, (0, 0, 0))
            cv.line(cx - 3, yhi, cx + 3, yhi, (0, 0, 0))
            cv.text(int(cx), int(yhi) - 12, fmt % v, scale=1, anchor="center")


def legend(cv, x, y, labels, colors, scale=2, per_row=3, col_w=330):
    for i, l in enumerate(labels):
        cx = x + (i % per_row) * col_w
        cy = y + (i // per_row) * 22
        cv.rect(cx, cy, cx + 16, cy + 14, colors[i % len(colors)])
        cv.text(cx + 22, cy, l, scale=scale)


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def machine_line(r):
    m = (r or {}).get("machine") or {}
    return "%s cpus %s, linux %s, %s" % (m.get("cpus", "?"), m.get("cpu", "?"), m.get("kernel", "?"), (r or {}).get("date", ""))


def plot_throughput(t, tcp, out):
    rows = t["rows"]
    sizes = sorted({r["frame_bytes"] for r in rows})
    threads = sorted({r["threads"] for r in rows})
    cases = [c for c in CASE_ORDER if any(r["case"] == c for r in rows)]
    panels = len(threads) + (1 if tcp else 0)
    pw = 640
    cv = Canvas(pw * panels + 20, 600)
    cv.text(10, 8, "THROUGHPUT THROUGH THE TUNNEL ON VETH: MPPS AT THE SINK (MEDIAN, BARS = MIN..MAX OVER %d ROUNDS)" % t["rounds"], scale=2)
    cv.text(10, 30, machine_line(t), scale=1)
    for pi, th in enumerate(threads):
        vals, errs = [], []
        for s in sizes:
            vr, er = [], []
            for c in cases:
                r = next((r for r in rows if r["case"] == c and r["frame_bytes"] == s and r["threads"] == th), None)
                if r is None:
                    vr.append(None)
                    er.append((0, 0))
                    continue
                vr.append(r["mpps_median"])
                rr = r["mpps_rounds"] or [r["mpps_median"]]
                er.append((min(rr), max(rr)))
            vals.append(vr)
            errs.append(er)
        bar_panel(cv, 10 + pi * pw, 50, pw - 20, 450, "%d GENERATOR THREAD%s (%d CORE%s)" % (th, "S" if th > 1 else "", th, "S" if th > 1 else ""),
                  ["%d B frames" % s for s in sizes], cases, vals, errs, "Mpps", COLORS)
    if tcp:
        trows = tcp["rows"]
        vals = [[r["gbps_median"] for r in trows]]
        errs = [[(min(r["gbps_rounds"] or [0]), max(r["gbps_rounds"] or [0])) for r in trows]]
        tcolors = [COLORS[CASE_ORDER.index(r["case"])] for r in trows]
        bar_panel(cv, 10 + len(threads) * pw, 50, pw - 20, 450, "TCP, IPERF3, ONE STREAM",
                  ["tunnel (red) / kernel forwarding (as in the legend)"], [r["case"] for r in trows], vals, errs, "Gbit/s", tcolors)
    legend(cv, 20, 520, [CASE_LABEL[c] for c in cases], COLORS)
    cv.png(out)


def plot_scale(s, out):
    # The random-subscriber rows; the ", 1 sub" (hot entry) rows are in the table only.
    rows = [r for r in s["rows"] if "1 sub" not in r["path"]]
    paths = []
    for r in rows:
        if r["path"] not in paths:
            paths.append(r["path"])
    subs = sorted({r["subscribers"] for r in rows})
    cv = Canvas(1100, 620)
    cv.text(10, 8, "PER-PACKET COST AGAINST TABLE SIZE (BPF_PROG_TEST_RUN, NS/PKT, MEDIAN; BARS = MIN..MAX)", scale=2)
    cv.text(10, 30, machine_line(s), scale=1)
    vals, errs = [], []
    for n in subs:
        vr, er = [], []
        for p in paths:
            r = next((r for r in rows if r["path"] == p and r["subscribers"] == n), None)
            vr.append(r["ns_per_packet"] if r else None)
            rr = (r or {}).get("ns_rounds") or [0]
            er.append((min(rr), max(rr)))
        vals.append(vr)
        errs.append(er)
    label = lambda n: ("%dk" % (n // 1000)) if n < 1_000_000 else ("%gM" % (n / 1e6))
    bar_panel(cv, 10, 50, 1080, 460, "SUBSCRIBERS INSTALLED", [label(n) + " subscribers" for n in subs], paths, vals, errs,
              "ns/pkt", COLORS, fmt="%.0f")
    legend(cv, 20, 530, paths, COLORS, per_row=5, col_w=210)
    mem = s.get("memory") or []
    if mem:
        m = mem[-1]
        cv.text(20, 580, "map memory per subscriber at %s: access gateway %.0f B, anchor %.0f B (IPv4-only anchor %.0f B)" % (
            label(m["subscribers"]), m["access_bytes_per_sub"], m["anchor_bytes_per_sub"], m["anchor_v4_only_bytes_per_sub"]), scale=1)
    cv.png(out)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "bench-results"
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join("docs", "bench")
    os.makedirs(dst, exist_ok=True)
    t, tcp, s = load(src, "throughput"), load(src, "tcp"), load(src, "scale")
    made = []
    if t:
        plot_throughput(t, tcp, os.path.join(dst, "throughput.png"))
        made.append("throughput.png")
    if s:
        plot_scale(s, os.path.join(dst, "scale.png"))
        made.append("scale.png")
    for name in ["per-packet", "throughput", "trafgen", "tcp", "scale"]:
        p = os.path.join(src, name + ".json")
        if os.path.exists(p) and os.path.abspath(src) != os.path.abspath(dst):
            shutil.copy(p, os.path.join(dst, name + ".json"))
    print("plots written to %s: %s" % (dst, ", ".join(made) or "none (no results)"))


if __name__ == "__main__":
    main()
