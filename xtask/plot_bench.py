#!/usr/bin/python3
"""Plots of the benchmark results, next to BENCHMARKS.md.

    /usr/bin/python3 xtask/plot_bench.py [RESULTS_DIR] [OUT_DIR]   (default: bench-results docs/bench)

Reads RESULTS_DIR/{throughput,tcp,scale,per-packet}.json (written by `cargo xtask
bench`) and writes OUT_DIR/throughput.png, scale.png and per-packet.png, plus a
copy of the JSON they were drawn from. Drawn with matplotlib (Debian's
python3-matplotlib, which `cargo xtask setup` installs): axes with units,
legends, min..max bars over the rounds, and the ceilings (what a straight veth
pair and a bare XDP redirect reach; the bare XDP pass cost) as dashed lines.
"""
import json
import os
import shutil
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

# Forwarding cases drawn as bars, in this order; the ceilings are lines.
BARS = ["min-fwd", "fastpath-native", "fastpath-generic", "fastpath-tc", "kernel"]
CEILINGS = ["veth", "redirect"]
LABEL = {
    "veth": "straight veth pair (ceiling)",
    "redirect": "XDP redirect only (ceiling)",
    "min-fwd": "minimal XDP forwarder",
    "fastpath-native": "fast path, native XDP",
    "fastpath-generic": "fast path, generic XDP",
    "fastpath-tc": "fast path, TC",
    "kernel": "kernel forwarding",
}
COLOR = {
    "veth": "#555555",
    "redirect": "#1f77b4",
    "min-fwd": "#17becf",
    "fastpath-native": "#d62728",
    "fastpath-generic": "#ff7f0e",
    "fastpath-tc": "#2ca02c",
    "kernel": "#9467bd",
}


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def machine_line(r):
    m = (r or {}).get("machine") or {}
    return "%s CPUs (%s), Linux %s, %s" % (
        m.get("cpus", "?"), m.get("cpu", "?"), m.get("kernel", "?"), (r or {}).get("date", ""))


def spread(values, median):
    """Error bar lengths (below, above) of min..max around the median."""
    if not values:
        return [0], [0]
    return [max(median - min(values), 0)], [max(max(values) - median, 0)]


def row(rows, **kw):
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)


def throughput_panel(ax, rows, threads):
    sizes = sorted({r["frame_bytes"] for r in rows})
    cases = [c for c in BARS if any(r["case"] == c for r in rows)]
    width = 0.8 / max(len(cases), 1)
    for ci, c in enumerate(cases):
        for si, s in enumerate(sizes):
            r = row(rows, case=c, frame_bytes=s, threads=threads)
            if r is None:
                continue
            x = si - 0.4 + width * (ci + 0.5)
            lo, hi = spread(r.get("mpps_rounds") or [], r["mpps_median"])
            ax.bar(x, r["mpps_median"], width * 0.92, color=COLOR[c],
                   label=LABEL[c] if si == 0 else None, yerr=[lo, hi], capsize=2, ecolor="black", linewidth=0)
            ax.annotate("%.2f" % r["mpps_median"], (x, r["mpps_median"] + hi[0]), ha="center", va="bottom",
                        fontsize=6, xytext=(0, 1), textcoords="offset points")
    for c in CEILINGS:
        for si, s in enumerate(sizes):
            r = row(rows, case=c, frame_bytes=s, threads=threads)
            if r is None:
                continue
            ax.hlines(r["mpps_median"], si - 0.45, si + 0.45, colors=COLOR[c], linestyles="dashed",
                      label=LABEL[c] if si == 0 else None)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels(["%d B" % s for s in sizes])
    ax.set_xlabel("frame size (bytes)")
    ax.set_ylabel("packets at the sink (Mpps)")
    ax.set_title("%d generator thread%s" % (threads, "s" if threads > 1 else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(bottom=0)


def tcp_panel(ax, tcp):
    rows = tcp["rows"]
    for i, r in enumerate(rows):
        lo, hi = spread(r.get("gbps_rounds") or [], r["gbps_median"])
        ax.bar(i, r["gbps_median"], 0.6, color=COLOR.get(r["case"], "#888888"), yerr=[lo, hi], capsize=3,
               label=LABEL.get(r["case"], r["case"]))
        ax.annotate("%.2f" % r["gbps_median"], (i, r["gbps_median"] + hi[0]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([LABEL.get(r["case"], r["case"]).replace(", ", ",\n") for r in rows], fontsize=7)
    ax.set_ylabel("TCP goodput (Gbit/s)")
    ax.set_title("TCP, iperf3, one stream (%s s × %d)" % (tcp.get("secs", "?"), tcp.get("rounds", 0)))
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(bottom=0)


def plot_throughput(t, tcp, out):
    rows = t["rows"]
    threads = sorted({r["threads"] for r in rows})
    panels = len(threads) + (1 if tcp else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5.5), squeeze=False,
                             gridspec_kw={"width_ratios": [3] * len(threads) + ([1.4] if tcp else [])})
    for ax, th in zip(axes[0], threads):
        throughput_panel(ax, rows, th)
    if tcp:
        tcp_panel(axes[0][-1], tcp)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Throughput through the tunnel on veth: median of %d rounds, bars min..max\n%s"
                 % (t.get("rounds", 0), machine_line(t)), fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_scale(s, out):
    # The random-subscriber rows; the ", 1 sub" (hot entry) rows stay in the table.
    rows = [r for r in s["rows"] if "1 sub" not in r["path"]]
    paths = []
    for r in rows:
        if r["path"] not in paths:
            paths.append(r["path"])
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for p in paths:
        pr = sorted((r for r in rows if r["path"] == p), key=lambda r: r["subscribers"])
        xs = [r["subscribers"] for r in pr]
        ys = [r["ns_per_packet"] for r in pr]
        if p == "xdp_pass":
            ax.plot(xs, ys, linestyle="dashed", color="#555555", label="xdp_pass (floor: the cost of any XDP program)")
            continue
        lo = [min(r.get("ns_rounds") or [r["ns_per_packet"]]) for r in pr]
        hi = [max(r.get("ns_rounds") or [r["ns_per_packet"]]) for r in pr]
        line = ax.plot(xs, ys, marker="o", label=p)[0]
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("subscribers installed (log scale)")
    ax.set_ylabel("cost per packet (ns, BPF_PROG_TEST_RUN)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    mem = s.get("memory") or []
    note = ""
    if mem:
        m = mem[-1]
        note = ("\nmap memory per subscriber at %d: access %.0f B, anchor %.0f B (IPv4-only anchor %.0f B)"
                % (m["subscribers"], m["access_bytes_per_sub"], m["anchor_bytes_per_sub"],
                   m["anchor_v4_only_bytes_per_sub"]))
    ax.set_title("Per-packet cost against table size, median (band: min..max over %d rounds)\n%s%s"
                 % (s.get("rounds", 0), machine_line(s), note), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_per_packet(pp, out):
    rows = pp["rows"]
    base_a = row(rows, case="xdp_pass (baseline a)")
    base_b = row(rows, case="min forwarder (baseline b)")
    rows = [r for r in rows if "baseline" not in r["case"]]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.8))
    ys = range(len(rows))
    colors = ["#888888" if r["case"].startswith("op:") else "#d62728" for r in rows]
    ax.barh(list(ys), [r["ns_per_packet"] for r in rows], color=colors,
            xerr=[r.get("spread_ns", 0) / 2 for r in rows], capsize=2)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([r["case"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    for b, name, color in [(base_a, "xdp_pass", "#555555"), (base_b, "minimal forwarder", "#1f77b4")]:
        if b:
            ax.axvline(b["ns_per_packet"], linestyle="dashed", color=color,
                       label="%s: %.0f ns" % (name, b["ns_per_packet"]))
    ax.set_xlabel("cost per packet (ns, BPF_PROG_TEST_RUN, median of %d rounds; bars: spread)" % pp.get("rounds", 0))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Per-packet cost of each path and operation\n%s" % machine_line(pp), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "bench-results"
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join("docs", "bench")
    os.makedirs(dst, exist_ok=True)
    t, tcp, s, pp = load(src, "throughput"), load(src, "tcp"), load(src, "scale"), load(src, "per-packet")
    made = []
    if t:
        plot_throughput(t, tcp, os.path.join(dst, "throughput.png"))
        made.append("throughput.png")
    if s:
        plot_scale(s, os.path.join(dst, "scale.png"))
        made.append("scale.png")
    if pp:
        plot_per_packet(pp, os.path.join(dst, "per-packet.png"))
        made.append("per-packet.png")
    for name in ["per-packet", "throughput", "trafgen", "tcp", "scale"]:
        p = os.path.join(src, name + ".json")
        if os.path.exists(p) and os.path.abspath(src) != os.path.abspath(dst):
            shutil.copy(p, os.path.join(dst, name + ".json"))
    print("plots written to %s: %s" % (dst, ", ".join(made) or "none (no results)"))


if __name__ == "__main__":
    main()
