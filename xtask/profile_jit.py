#!/usr/bin/env python3
"""Where a per-packet case spends its time, down to the JITed instructions.

Run by `cargo xtask profile CASE` (xtask/src/main.rs), which builds and then
calls: profile_jit.py BENCH_BIN OUT_DIR CASE PROGRAM SECS CPU
(SECS: the most seconds sampled; sampling stops when the bench ends).

1. Runs `pmip-bench per-packet` with only CASE (PMIP_BENCH_CASES; the
   baselines stay) timed through bench_replay, millions of runs per
   measurement (PMIP_BENCH_REPLAY_REPEAT), pinned to CPU.
2. Once PROGRAM is loaded, reads its JITed image, line info and jited line
   info with BPF_OBJ_GET_INFO_BY_FD (this host's bpftool has no libbfd, so
   `bpftool prog dump jited` cannot disassemble) and its xlated dump with
   source lines (`bpftool prog dump xlated linum`).
3. Samples the CPU with `perf record` (cpu-clock: this VM exposes no
   hardware PMU, so no cycles, instructions or IPC).
4. Writes OUT_DIR/annotated.txt: objdump's disassembly, each instruction with
   its samples and the source line it came from (path.txt: the path's
   instructions alone); and prints
   - the share of each symbol in the case's part of the run (the program,
     the helpers it calls, the harness), in ns per run;
   - the path: the basic blocks that ran (a block with a sample ran; the
     path is the same every run), their x86 instructions and calls;
   - where those instructions come from, by source line.
Samples land on the instruction after the one that waited (no precise
sampling here): read the per-line figures as where time piles up, and the
instruction counts as a lower bound (a short block may get no sample).
"""
import bisect
import collections
import ctypes
import os
import re
import signal
import struct
import subprocess
import sys
import time

SYS_BPF = 321  # x86_64
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 13, 15
INFO_LEN = 232  # struct bpf_prog_info up to jited_line_info_rec_size and beyond
libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), "bpf(%d)" % cmd)
    return r


def prog_info(fd, info):
    ib = ctypes.create_string_buffer(bytes(info), INFO_LEN)
    bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("IIQ", fd, INFO_LEN, ctypes.addressof(ib)))
    return ib.raw


def dump_jited(prog_id, out):
    """The JITed image (out.bin) and, per line info record, the BPF
    instruction and its JITed address as an offset into the image (out.lines)."""
    fd = bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("I", prog_id))
    raw = prog_info(fd, bytearray(INFO_LEN))
    jlen, = struct.unpack_from("I", raw, 16)
    nksyms, = struct.unpack_from("I", raw, 104)
    nline, = struct.unpack_from("I", raw, 148)
    njline, = struct.unpack_from("I", raw, 168)
    lrec, = struct.unpack_from("I", raw, 172)
    nflens, = struct.unpack_from("I", raw, 108)
    jbuf = ctypes.create_string_buffer(jlen)
    ksyms = ctypes.create_string_buffer(8 * nksyms)
    flens = ctypes.create_string_buffer(4 * nflens)
    lbuf = ctypes.create_string_buffer(nline * lrec)
    jlbuf = ctypes.create_string_buffer(8 * njline)
    info = bytearray(INFO_LEN)
    struct.pack_into("IQ", info, 16, jlen, 0)
    struct.pack_into("Q", info, 24, ctypes.addressof(jbuf))
    struct.pack_into("II", info, 104, nksyms, nflens)
    struct.pack_into("QQ", info, 112, ctypes.addressof(ksyms), ctypes.addressof(flens))
    struct.pack_into("I", info, 148, nline)
    struct.pack_into("QQ", info, 152, ctypes.addressof(lbuf), ctypes.addressof(jlbuf))
    struct.pack_into("III", info, 168, njline, lrec, 8)
    prog_info(fd, info)
    os.close(fd)
    with open(out + ".bin", "wb") as f:
        f.write(jbuf.raw)
    # The image is the functions' images one after another: a JITed
    # address maps to the image through its function's start.
    starts = struct.unpack("%dQ" % nksyms, ksyms.raw)
    lens = struct.unpack("%dI" % nflens, flens.raw)
    base, acc = [], 0
    for s, n in zip(starts, lens):
        base.append((s, s + n, acc))
        acc += n
    with open(out + ".lines", "w") as f:
        for i in range(min(nline, njline)):
            insn, = struct.unpack_from("I", lbuf.raw, i * lrec)
            addr, = struct.unpack_from("Q", jlbuf.raw, i * 8)
            for s, e, off in base:
                if s <= addr < e:
                    f.write("%d %d\n" % (insn, addr - s + off))
    return starts[0] if starts else 0


def prog_id(name):
    out = subprocess.run(["bpftool", "prog", "show", "name", name],
                         capture_output=True, text=True).stdout
    m = re.match(r"(\d+):", out)
    return int(m.group(1)) if m else None


def main():
    bench, out, case, program, secs, cpu = sys.argv[1:7]
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, PMIP_BENCH_CASES=case, PMIP_BENCH_REPLAY_ONLY="1",
               PMIP_BENCH_REPLAY_REPEAT=os.environ.get("PMIP_BENCH_REPLAY_REPEAT", "3000000"))
    log = open(os.path.join(out, "bench.log"), "w")
    b = subprocess.Popen(["taskset", "-c", cpu, bench, "per-packet"], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    pid = None
    for _ in range(300):
        pid = prog_id(program)
        if pid or b.poll() is not None:
            break
        time.sleep(0.1)
    if not pid:
        b.wait()
        sys.exit("profile: %s never loaded (see %s/bench.log)" % (program, out))
    jit = os.path.join(out, "jit")
    dump_jited(pid, jit)
    with open(jit + ".xlated", "w") as f:
        subprocess.run(["bpftool", "prog", "dump", "xlated", "id", str(pid), "linum"], stdout=f,
                       check=True)
    data = os.path.join(out, "perf.data")
    # Sampled until the bench ends (at most SECS): a fixed window could
    # miss the case, which runs after the baselines.
    perf = subprocess.Popen(["perf", "record", "-q", "-C", cpu, "-F", "20000", "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc = b.wait(timeout=int(secs))
    except subprocess.TimeoutExpired:
        rc = None
    perf.send_signal(signal.SIGINT)
    perf.wait()
    if rc is None:
        rc = b.wait()
    if rc != 0:
        sys.exit("profile: the bench failed (see %s/bench.log)" % out)
    samples = subprocess.run(["perf", "script", "-i", data, "-F", "time,ip,sym,symoff"],
                             capture_output=True, text=True).stdout
    dis = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", jit + ".bin"],
                         capture_output=True, text=True, check=True).stdout
    report(out, program, samples, dis, open(jit + ".lines").read(), open(jit + ".xlated").read(),
           int(env["PMIP_BENCH_REPLAY_REPEAT"]))


def report(out, program, samples, dis, lines, xlated, repeat):
    # Samples: (time, symbol, offset in it).
    ss = []
    for l in samples.splitlines():
        m = re.match(r"\s*([\d.]+):\s+[0-9a-f]+\s+(\S+?)(?:\+0x([0-9a-f]+))?$", l.strip())
        if m:
            ss.append((float(m.group(1)), m.group(2), int(m.group(3) or "0", 16)))
    # The case's part of the run: from a sample in the program to the first
    # sample of another program that is not the harness.
    def prog_of(sym):
        m = re.match(r"bpf_prog_[0-9a-f]+_(\w+)", sym)
        return m.group(1) if m and m.group(1) not in ("bench_replay",) else None
    chunks, cur = [], None
    for t, sym, off in ss:
        p = prog_of(sym)
        if p and p != cur:
            cur = p
            chunks.append((p, []))
        if chunks:
            chunks[-1][1].append((t, sym, off))
    # Each part trimmed to its first and last sample in the program itself,
    # so that the next case's start (an xdp_pass is rarely sampled) is not in it.
    mine = []
    for p, c in chunks[1:-1]:
        own = [i for i, (t, sym, off) in enumerate(c) if prog_of(sym) == program]
        if p == program and len(own) > 20:
            mine.append(c[own[0]:own[-1] + 1])
    tot = collections.Counter()
    span = 0.0
    for c in mine:
        span += c[-1][0] - c[0][0]
        for t, sym, off in c:
            tot[sym] += 1
    n = sum(tot.values())
    runs = len(mine) * 3 * repeat  # REPLAY_TRIES measurements per round
    print("profile of %s: %d samples in %d whole parts of the run" % (program, n, len(mine)))
    if n and runs:
        print("ns per run by symbol (the case's part only; idle left out):")
        for sym, c in tot.most_common(12):
            if "halt" in sym:
                continue
            print("  %6.1f  %s" % (span * 1e9 / runs * c / n, sym))
    # The program's own samples, by offset in its image.
    cnt = collections.Counter(off for c in mine for t, sym, off in c if prog_of(sym) == program)
    ins = []
    for l in dis.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*(.*)", l)
        if m and m.group(3):
            ins.append((int(m.group(1), 16), m.group(3).strip()))
    j2i = sorted(tuple(map(int, l.split()))[::-1] for l in lines.splitlines())
    keys = [j for j, _ in j2i]
    src, cur = {}, "?"
    for l in xlated.splitlines():
        if l.startswith("; "):
            m = re.search(r"\[file:\S*?([^/\s]+) line_num:(\d+)", l)
            cur = "%s:%s %s" % (m.group(1), m.group(2), l[2:].split(" [file:")[0].strip()[:70]) \
                if m else l[2:72]
        else:
            m = re.match(r"\s*(\d+):", l)
            if m:
                src[int(m.group(1))] = cur

    def src_of(off):
        k = bisect.bisect_right(keys, off) - 1
        return src.get(j2i[k][1], "?") if k >= 0 else "?"
    # Basic blocks: split at jump targets and after jumps, calls, returns.
    targets = {int(m.group(1), 16) for _, t in ins
               for m in [re.match(r"j\w+\s+0x([0-9a-f]+)$", t)] if m}
    blocks, blk = [], []
    for off, t in ins:
        if off in targets and blk:
            blocks.append(blk)
            blk = []
        blk.append((off, t))
        if re.match(r"(j\w+|ret|call)\b", t):
            blocks.append(blk)
            blk = []
    if blk:
        blocks.append(blk)
    hit = [any(cnt[o] for o, _ in b) for b in blocks]
    # A call's block ran when its continuation did (samples land after the return).
    for i in range(len(blocks) - 2, -1, -1):
        if not hit[i] and blocks[i][-1][1].startswith("call") and hit[i + 1]:
            hit[i] = True
    ran = [b for b, h in zip(blocks, hit) if h]
    path = [(o, t) for b in ran for o, t in b]
    calls = sum(1 for _, t in path if t.startswith("call"))
    loads = sum(1 for _, t in path if re.match(r"mov\w*\s+-?0x[0-9a-f]+\(%r", t))
    print("path: %d basic blocks, %d x86 instructions (%d loads, %d calls)"
          % (len(ran), len(path), loads, calls))
    by = collections.Counter(src_of(o) for o, _ in path)
    print("the path's instructions by source line:")
    for s, c in by.most_common(25):
        print("  %4d  %s" % (c, s))
    pn = sum(cnt.values()) or 1

    def listing(name, rows):
        """Instructions with their samples (and share), under their source lines."""
        with open(os.path.join(out, name), "w") as f:
            last = None
            for off, t in rows:
                s = src_of(off)
                if s != last:
                    f.write("        ; %s\n" % s)
                    last = s
                f.write("%6d %5.1f%%  %5x: %s\n" % (cnt[off], 100 * cnt[off] / pn, off, t))
    listing("annotated.txt", ins)
    listing("path.txt", path)
    print("annotated JIT: %s (the path alone: path.txt)" % os.path.join(out, "annotated.txt"))


if __name__ == "__main__":
    main()
