#!/usr/bin/env python3
"""Does ptxas give every L2-hinted K/V copy of a decode kernel a cache-policy descriptor that the kernel writes?

CUDA 13.0's ptxas compiled the producer-warp decode kernels' evict-first cp.async (LDGSTS ... desc[URn]) with a
descriptor in uniform registers that no instruction of the kernel writes; the H200 raised
CUDA_ERROR_ILLEGAL_INSTRUCTION there (RESULTS.md, sessions 8 and 9). The every-warp loaders carry the hint by default
(generator/generator.cpp, kv_evict_first). This script generates decode kernels with `swajit gen` (evict-first on),
compiles each with nvcc for sm_90a as the runtime's NVRTC does, disassembles it and reports, for each, the uniform
registers its desc[] operands name and those that no instruction writes (a pair URn, URn+1 must both be written).
A control (producer 1 with the hint forced into the source) must be flagged, or the check itself is broken.

    python3 tools/bench/sass_policy_check.py [--swajit build-gpu/tools/swajit] [--only N]

Needs nvcc (the CUDA 13 toolkit) and cuobjdump + nvdisasm on PATH, which the toolkit on the build machine lacks: the
PyPI wheels nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm carry them (`pip download --no-deps`, unzip, add
nvidia/cu13/bin to PATH; tools/run_python_tests.sh installs them for tests/python/test_sass_cache_policy.py, which runs
this on every CI run). A few seconds a kernel. Exit status 1 if any default kernel is flagged.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

# head_dim, q_seqlen, group, block_n, warps_n, stages, direct grid, extra gen flags: the decode heuristic's 16-bit
# tiles and their neighbours in the tuner's space.
CONFIGS = [
    (128, 1, 4, 64, 4, 3, "true", []),
    (128, 4, 4, 64, 4, 3, "false", []),
    (128, 1, 4, 32, 2, 3, "false", []),
    (128, 4, 4, 32, 2, 3, "false", []),
    (128, 1, 4, 128, 4, 3, "false", []),
    (128, 8, 4, 64, 4, 3, "false", []),
    (64, 1, 8, 64, 4, 3, "false", []),
    (64, 1, 8, 32, 2, 4, "true", ["--sink-logits"]),
    (256, 1, 2, 32, 2, 3, "false", []),
    (256, 1, 2, 32, 2, 3, "true", []),
    (128, 1, 1, 64, 4, 2, "false", []),
    (128, 2, 16, 64, 4, 3, "false", []),
    (128, 1, 4, 64, 2, 4, "false", []),
    (256, 4, 2, 64, 4, 2, "false", []),
    (128, 1, 4, 16, 1, 3, "false", ["--page-size", "1"]),
    (128, 4, 8, 64, 4, 3, "false", ["--fused-merge", "true"]),
    # 8-bit caches (SWAJIT_DECODE_KV8_EVICT_FIRST): the default tile and the halved one the heuristic takes from b64
    (128, 1, 4, 64, 4, 3, "false", ["--kv-quant", "fp8"]),
    (128, 4, 4, 32, 2, 3, "false", ["--kv-quant", "fp8"]),
    (128, 1, 4, 32, 2, 3, "true", ["--kv-quant", "int8"]),
    (256, 1, 2, 32, 2, 3, "false", ["--kv-quant", "fp8"]),
]
# session 9's failing producer-warp kernel, with the hint forced on in its source
CONTROL = (256, 1, 2, 32, 2, 3, "true", ["--producer", "1"])
INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_.]+)\s+([^;]*);")
STORES = ("LDGSTS", "STG", "STS", "UBLKCP", "UTMA")  # first operand is an address, not a destination


def generate(swajit, config, force_hint):
    head_dim, q, group, block_n, warps_n, stages, direct, extra = config
    args = [swajit, "gen", "--head-dim", str(head_dim), "--q-seqlen", str(q), "--group", str(group),
            "--block-n", str(block_n), "--warps-n", str(warps_n), "--stages", str(stages), "--direct-grid", direct,
            "--local-window", "4096"] + (extra if "--producer" in extra else ["--producer", "0"] + extra)
    env = dict(os.environ, SWAJIT_DECODE_KV_EVICT_FIRST="1", SWAJIT_DECODE_KV8_EVICT_FIRST="1")
    source = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout
    if force_hint:
        source = source.replace("constexpr bool kKvEvictFirst = false;", "constexpr bool kKvEvictFirst = true;")
    if "constexpr bool kKvEvictFirst = true;" not in source:
        raise RuntimeError(f"{config}: the hint is not compiled in")
    return source


def unwritten_descriptors(source, workdir, name):
    cu, cubin = os.path.join(workdir, name + ".cu"), os.path.join(workdir, name + ".cubin")
    with open(cu, "w") as f:
        f.write(source)
    subprocess.run(["nvcc", "-cubin", "-arch=sm_90a", "--std=c++17", "-w", "-o", cubin, cu], check=True)
    sass = subprocess.run(["cuobjdump", "-sass", cubin], capture_output=True, text=True, check=True).stdout
    written, used = set(), set()
    for match in INSTRUCTION.finditer(sass):
        opcode, operands = match.groups()
        first = re.fullmatch(r"UR(\d+)", operands.split(",")[0].strip())
        if first and not opcode.startswith(STORES):
            written.add(int(first.group(1)))
            if ".64" in opcode or opcode.startswith(("UIMAD.WIDE", "R2UR.64")):
                written.add(int(first.group(1)) + 1)
        used.update(int(r) for r in re.findall(r"desc\[UR(\d+)\]", operands))
    return sorted(used), sorted(r for r in used if r not in written or r + 1 not in written)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--swajit", default="build-gpu/tools/swajit")
    ap.add_argument("--only", type=int, default=0, help="the first N configs (0: all)")
    args = ap.parse_args()
    flagged = 0
    with tempfile.TemporaryDirectory() as workdir:
        _, control_bad = unwritten_descriptors(generate(args.swajit, CONTROL, True), workdir, "control")
        print(f"control (producer 1, hint forced): unwritten {control_bad or 'none'}"
              f" -> {'flagged, as expected' if control_bad else 'NOT FLAGGED: the check is broken'}", flush=True)
        if not control_bad:
            return 2
        for i, config in enumerate(CONFIGS[:args.only or None]):
            used, bad = unwritten_descriptors(generate(args.swajit, config, False), workdir, f"k{i}")
            flagged += bool(bad)
            print(f"{config}: desc[] registers {used}, unwritten {bad or 'none'}", flush=True)
    print(f"{flagged} of {len(CONFIGS[:args.only or None])} kernels flagged")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
