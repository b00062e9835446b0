#!/usr/bin/env python3
"""Instruction counts of each innermost loop of kernels' machine code (SASS): the static evidence bench/NOTES.md
quotes ("117 instructions per 64 FFMA"). Assembles each PTX file with ptxas for sm_80 (its .version lowered to what
ptxas 11.8 takes, as kd check --compile ptx does) and disassembles it with cuobjdump, both from scripts/get-ptxas.sh;
a PTX file retargeted to sm_90 (GEMM v22) goes to CUDA 12.4's (.tools/cuda12, or KD_PTXAS_SM90) at ISA 8.0.

Usage:  kd check --compile ptx --out DIR --filter Gemm
        python3 scripts/sass-loops.py DIR/ptx/Gemm.V12Kernel.ptx [more.ptx ...]

Per kernel: registers and spills (ptxas -v), then per innermost loop (a backward branch whose body holds no other)
its instructions, FFMA, shared loads (LDS), global or generic loads (LDG, LD), integer divisions (I2F.U32.RP), and
local-memory loads and stores (LDL, STL: spills). A loop with tensor-core mma in it whose inner loops have none
(GEMM v22's and v24's stage loops hold an mbarrier wait loop and per-lane bulk-copy loops, BRA.U.ANY) gets a line of
its own, "stage loop": its instructions as written (each inner loop's body once), HMMA, LDSM, UBLKCP and LDL/STL.
With --passes N (first), the innermost loop that holds loops with mma (attention's tile loop: its chunk loops) gets a
"tile loop" line: the instructions of one pass along its fall-through path (a predicated branch not taken, an
unconditional one taken; NOP not counted), each loop inside it run N times (attention at 64 channels: 4, its chunks
of 16 channels and its copies of 16 channel rows), HMMA and local stores (STL: ILGPU's inline-assembly outputs) counted
the same way: an estimate of the instructions a warp issues a tile, not a measurement (a GEMM's such loop is its grid
loop, where N means nothing).

Usage:  python3 scripts/sass-loops.py --passes 4 DIR/ptx/Attention.Tf32x3AsyncForwardKernel.ptx
A file ending in .sass is read as a cuobjdump -sass listing, with no ptxas (and no registers line)."""
import os, re, subprocess, sys, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tools = os.path.join(root, ".tools", "cuda", "usr", "bin")

def toolset(sm90):
    """(ptxas, cuobjdump, arch, isa) for a kernel's target: CUDA 11.8's for sm_80, 12.4's for sm_90."""
    if sm90:
        ptxas = os.environ.get("KD_PTXAS_SM90") or os.path.join(root, ".tools", "cuda12", "usr", "bin", "ptxas")
    else:
        ptxas = os.environ.get("KD_PTXAS") or os.path.join(tools, "ptxas")
    cuobjdump = os.path.join(os.path.dirname(ptxas), "cuobjdump")   # it runs the nvdisasm beside it
    for tool in (ptxas, cuobjdump, os.path.join(os.path.dirname(ptxas), "nvdisasm")):
        if not os.path.isfile(tool):
            sys.exit(f"sass-loops: no {tool}: run scripts/get-ptxas.sh (as root) first")
    return ptxas, cuobjdump, ("sm_90", "8.0") if sm90 else ("sm_80", "7.8")

def loops(sass):
    code = [l.strip() for l in sass.splitlines() if re.match(r"\s+/\*[0-9a-f]{4,}\*/", l)]
    found = []
    for l in code:
        m = re.search(r"/\*([0-9a-f]+)\*/\s+(@!?U?P\w+\s+)?BRA(\.[A-Z.]+)?\s+(0x[0-9a-f]+)", l)
        if m and int(m.group(4), 16) < int(m.group(1), 16):
            found.append((int(m.group(4), 16), int(m.group(1), 16)))
    inner = [(a, b) for (a, b) in found if not any(a <= c and d <= b and (c, d) != (a, b) for (c, d) in found)]
    for a, b in sorted(found):
        body = code[a // 16: b // 16 + 1]
        count = lambda pattern: sum(bool(re.search(pattern, x)) for x in body)
        if (a, b) in inner:
            yield "loop", a, b, len(body), count(r"\bFFMA\b"), count(r"\bLDS\b"), count(r"\b(LDG|LD)\.E"), count(r"I2F\.U32\.RP"), count(r"\b(LDL|STL)\b")
        elif count(r"\bHMMA\b") > 0 and not any(a <= c and d <= b and (c, d) != (a, b) and any(
                re.search(r"\bHMMA\b", x) for x in code[c // 16: d // 16 + 1]) for (c, d) in found):
            yield "stage loop", a, b, len(body), count(r"\bHMMA\b"), count(r"\bLDSM\b"), count(r"\bUBLKCP\b"), count(r"\b(LDL|STL)\b")

def tile_loops(sass, passes):
    """(a, b, instructions, HMMA, STL) of one pass through each loop holding loops with mma (see the docstring)."""
    code = {int(m.group(1), 16): m.group(2) for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)}
    order = sorted(code)
    back = []   # (target, branch) of each backward branch: a loop
    for at, x in code.items():
        m = re.match(r"(?:@!?U?P\w+\s+)?BRA(?:\.[A-Z.]+)?\s+(0x[0-9a-f]+)", x)
        if m and int(m.group(1), 16) < at:
            back.append((int(m.group(1), 16), at))
    mma = lambda a, b: any("HMMA" in code[x] for x in order if a <= x <= b)

    def walk(a, b, loops):
        """Instructions, HMMA and STL along the fall-through path from a to b's back branch, loops in `loops` run passes
        times."""
        n = h = stl = 0
        x = a
        while x <= b:
            inner = next(((c, d) for c, d in loops if c == x), None)
            if inner:
                m, k, q = walk(inner[0], inner[1], [l for l in back if inner[0] <= l[0] and l[1] <= inner[1] and l != inner])
                n, h, stl = n + passes * m, h + passes * k, stl + passes * q
                x = order[order.index(inner[1]) + 1]
                continue
            text = code[x]
            if not text.startswith("NOP"):
                n, h, stl = n + 1, h + ("HMMA" in text), stl + bool(re.search(r"\bSTL\b", text))
            jump = re.match(r"BRA(?:\.[A-Z.]+)?\s+(0x[0-9a-f]+)", text)
            if jump and x != b and int(jump.group(1), 16) > x:
                x = int(jump.group(1), 16)
                continue
            if x == order[-1]:
                break
            x = order[order.index(x) + 1]
        return n, h, stl

    def direct(a, b):
        inside = [(c, d) for c, d in back if a <= c and d <= b and (c, d) != (a, b)]
        return [(c, d) for c, d in inside if not any(e <= c and d <= f and (e, f) != (c, d) for e, f in inside)]

    holds = lambda a, b: any(mma(c, d) for c, d in direct(a, b))   # a loop holding loops with mma
    for a, b in sorted(back):
        # the innermost such loop only (not the grid-stride loop around it)
        if holds(a, b) and not any(holds(c, d) for c, d in direct(a, b)):
            yield (a, b, *walk(a, b, direct(a, b)))


def assemble(path):
    """(the kernel's heading, its SASS): a PTX file through ptxas and cuobjdump, a .sass file (cuobjdump's listing) as
    it is; None where ptxas refuses the PTX."""
    name = os.path.basename(path).rsplit(".", 1)[0]
    if path.endswith(".sass"):
        return name, open(path).read()
    with tempfile.TemporaryDirectory() as tmp:
        ptx = open(path).read()
        ptxas, cuobjdump, (arch, isa) = toolset(re.search(r"^\s*\.target\s+sm_9", ptx, flags=re.M) is not None)
        ptx = re.sub(r"^\.version [0-9.]+", ".version " + isa, ptx, count=1, flags=re.M)
        src, cubin = os.path.join(tmp, "k.ptx"), os.path.join(tmp, "k.cubin")
        open(src, "w").write(ptx)
        info = subprocess.run([ptxas, "-arch=" + arch, "-v", src, "-o", cubin], capture_output=True, text=True)
        if info.returncode != 0:
            print(f"{name}: ptxas failed\n{info.stderr}")
            return None
        regs = re.search(r"Used (\d+) registers", info.stderr)
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info.stderr)
        env = dict(os.environ, PATH=os.path.dirname(cuobjdump) + os.pathsep + os.environ.get("PATH", ""))
        sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True, check=True, env=env).stdout
    return (f"{name}: {regs.group(1) if regs else '?'} registers, spills {spill.group(1)} / {spill.group(2)} B" if spill else name), sass


passes = None
args = sys.argv[1:]
if args[:1] == ["--passes"]:
    passes, args = int(args[1]), args[2:]
for path in args or sys.exit(__doc__):
    if not (kernel := assemble(path)):
        continue
    heading, sass = kernel
    print(heading)
    for kind, a, b, n, *c in loops(sass):
        if kind == "loop":
            print(f"  loop {a:#06x}-{b:#06x}: {n} instructions, {c[0]} FFMA, {c[1]} LDS, {c[2]} LDG/LD, {c[3]} divisions, {c[4]} spill LDL/STL")
        else:
            print(f"  stage loop {a:#06x}-{b:#06x}: {n} instructions, {c[0]} HMMA, {c[1]} LDSM, {c[2]} UBLKCP, {c[3]} LDL/STL")
    for a, b, n, h, stl in tile_loops(sass, passes) if passes else []:
        print(f"  tile loop {a:#06x}-{b:#06x}: {n} instructions a pass, {h} HMMA, {stl} STL (fall-through path, inner loops {passes} times)")
