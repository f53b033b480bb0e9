#!/usr/bin/env python3
"""Throws hostile invocations at the `swajit` CLI -- bad flag values, bad devices, bad shards, unknown verbs, damaged
workload and import files, unwritable export paths, damaged databases and binaries -- and counts how each ends. Every one
must end in a clean error: a non-zero exit with a message on stderr, no signal (crash) and no hang. A damaged database
must be moved aside and reported; a damaged binary must be discarded, recompiled and reported by `db verify`.

usage: hostile_cli.py SWAJIT_BINARY   (prints the counts; exit 0 only if every case ended cleanly)"""
import copy
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import tempfile

TIMEOUT_S = 120  # any single case: an invalid input is refused in well under a second

BAD_SIZES = ["0", "-1", "-5", "4294967298", "9223372036854775808", "abc", "1x", "1.5", ""]
BAD_WINDOWS = ["-1", "4294967298", "abc", "1x", "1.5"]
BAD_DEVICES = ["cuda", "cuda:0", "cuda:1", "cuda:99999999999", "cuda:-1", "cuda:", "cuda:1x", "gpu", "cpu:0", ""]
BAD_SHARDS = ["0/2x", "2/2", "-1/2", "0/0", "a/b", "0/", "/2", "0/99999999999", "1", "0//2", " 0/2"]
SIZE_FLAGS = {  # verb -> flags that take a size (each element of a list flag)
    ("bench", "decode"): ["--batch", "--kv-len", "--q-seqlen", "--num-q-heads", "--num-kv-heads", "--head-dim",
                          "--page-size", "--reps"],
    ("bench", "prefill"): ["--seq", "--num-kv-heads", "--batch", "--num-q-heads", "--head-dim", "--reps"],
    ("tune",): ["--batch", "--kv-len", "--q-seqlen", "--quick-reps", "--final-reps", "--seq", "--num-kv-heads"],
}
WINDOW_FLAGS = {("bench", "decode"): ["--local-window", "--global-window"],
                ("bench", "prefill"): ["--local-window", "--global-window"], ("tune",): ["--local-window"]}
DEVICE_VERBS = [("check",), ("bench", "decode"), ("bench", "prefill"), ("bench", "load"), ("tune", "--preset",
                                                                                          "mistral-7b")]
VALID_SHAPE = {"batch": 1, "kv_len": 32, "q_seqlen": 1, "num_q_heads": 2, "num_kv_heads": 1, "head_dim": 64,
               "page_size": 16, "dtype": "bf16", "kv_quant": "none", "local_window": 16, "global_window": 0,
               "sink_logits": False}
BAD_JSON_VALUES = [None, "yes", 5, 1.5, -1, 0, 4294967298, 18446744073709551615, [], {}, True, "bf16x"]
VALID_EXPORT = {"format": "swajit-tuning-db", "version": 1,
                "devices": [{"sku": "h100", "name": "H100", "backend": "cuda", "cc_major": 9, "cc_minor": 0,
                             "sm_count": 132, "memory_bytes": 1, "driver_version": 1, "compiler_version": 1,
                             "extra": {}}],
                "winners": [{"device_sku": "h100", "spec_key": "s", "bucket": "b", "config": {"block_n": 32},
                             "time_us": 1.0, "samples": 1}]}
BAD_EXPORT_VALUES = [None, "x", -1, 1.5, 9223372036854775808, [], {}, True, float("nan")]


class Counts:
    def __init__(self):
        self.cases = self.clean = self.crashes = self.hangs = self.silent = 0
        self.failures = []

    def run(self, name, args, env, expect_failure=True, message_on="stderr"):
        self.cases += 1
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            self.hangs += 1
            self.failures.append(f"HANG {name}: {args[1:]}")
            return None
        if p.returncode < 0:
            self.crashes += 1
            self.failures.append(f"CRASH (signal {-p.returncode}) {name}: {args[1:]}\n{p.stderr[-2000:]}")
        elif expect_failure and (p.returncode == 0 or not getattr(p, message_on).strip()):
            self.silent += 1
            self.failures.append(f"ACCEPTED {name}: {args[1:]} exit {p.returncode}\n{p.stdout[-500:]}")
        elif "internal error" in p.stderr or "terminate called" in p.stderr:
            self.crashes += 1
            self.failures.append(f"UNCAUGHT {name}: {args[1:]}\n{p.stderr[-2000:]}")
        else:
            self.clean += 1
        return p


def main() -> int:
    swajit = sys.argv[1]
    counts = Counts()
    with tempfile.TemporaryDirectory(prefix="swajit_hostile_") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        env = dict(os.environ, SWAJIT_DB=str(tmp / "tuning.db"))
        env.pop("CUDA_VISIBLE_DEVICES", None)
        run = lambda name, *args, **kw: counts.run(name, [swajit, *args], env, **kw)

        for verb, flags in SIZE_FLAGS.items():
            for flag in flags:
                for value in BAD_SIZES:
                    run("size flag", *verb, flag, value, "--device", "cpu")
        for verb, flags in WINDOW_FLAGS.items():
            for flag in flags:
                for value in BAD_WINDOWS:
                    run("window flag", *verb, flag, value, "--device", "cpu")
        for verb in DEVICE_VERBS:
            for device in BAD_DEVICES:
                if device in ("cuda", "cuda:0", "cuda:1") and counts.cases and has_gpu(swajit, env):
                    continue  # valid where there is a GPU
                run("device", *verb, "--device", device)
        for shard in BAD_SHARDS:
            run("shard", "tune", "--preset", "mistral-7b", "--device", "cpu", "--shard", shard)
        for words in (["frob"], ["bench", "frob"], ["db", "frob"], ["db"], ["db", "export"], ["db", "import"],
                      ["db", "merge"], ["tune"], ["tune", "--preset", "nope", "--device", "cpu"],
                      ["tune", "--family", "nope", "--preset", "mistral-7b", "--device", "cpu"],
                      ["gen", "--head-dim", "-1"], ["gen", "--page-size", "4294967312"], ["gen", "--key", "garbage"],
                      ["gen", "--dtype", "fp64"], ["gen", "--q-seqlen", "0"], ["gen", "--group", "17"],
                      ["bench", "decode", "--dtype", "fp64", "--device", "cpu"],
                      ["bench", "decode", "--kv-quant", "int4", "--device", "cpu"],
                      ["bench", "decode", "--kv-len", "16777216", "--batch", "16777216", "--device", "cpu"],
                      ["bench", "decode", "--num-q-heads", "3", "--num-kv-heads", "2", "--device", "cpu"],
                      ["bench", "decode", "--q-seqlen", "9", "--device", "cpu"],
                      ["check", "--seed", "-1", "--device", "nope"], ["check", "--seed", "-1", "--device", "cpu"],
                      ["check", "--seed", "18446744073709551616", "--device", "cpu"], ["gen", "--device", "gpu"],
                      ["check", "--device", "cpu", "--filter", "direct kernel|capacity schedule"],
                      ["gen", "--block-n", "0"], ["gen", "--splits", "-1"], ["gen", "--stages", "99"],
                      ["gen", "--warps-n", "4294967297"], ["gen", "--family", "prefill", "--page-size", "0",
                                                           "--block-m", "0"],
                      ["gen", "--family", "prefill", "--page-size", "0", "--min-blocks", "9"],
                      ["gen", "--key", "paged_decode_bf16_d128_p0_nhd_q1_g1"], ["gen", "--group", "0"],
                      ["bench", "prefill", "--device", "cpu"], ["tune", "--family", "prefill", "--device", "cpu"]):
            run("verb", *words)

        # Workload files: every field with every wrong value, missing required fields, wrong structure.
        def workload_case(name, document, raw=None):
            path = tmp / "workload.json"
            path.write_text(raw if raw is not None else json.dumps(document))
            run(name, "tune", "--workload", str(path), "--device", "cpu", "--quick-reps", "1", "--final-reps", "1")
        for field in VALID_SHAPE:
            for value in BAD_JSON_VALUES:
                if not valid_shape_field(field, value):
                    workload_case("workload field", {"shapes": [dict(VALID_SHAPE, **{field: value})]})
        for field in ("batch", "kv_len", "num_q_heads", "num_kv_heads", "head_dim"):
            shape = dict(VALID_SHAPE)
            del shape[field]
            workload_case("workload missing field", {"shapes": [shape]})
        for document in ({}, {"shapes": {}}, {"shapes": [5]}, {"shapes": "x"}, [], 5,
                         {"shapes": [dict(VALID_SHAPE, kv_len=1, q_seqlen=2)]}):
            workload_case("workload structure", document)
        for raw in ("", "{", "[" * 100000 + "]" * 100000, "{\"shapes\": [" + "[" * 5000, "\x00\xff\xfe",
                    "{\"shapes\": [{\"batch\": 1e400}]}"):
            workload_case("workload text", None, raw)
        run("workload path", "tune", "--workload", str(tmp), "--device", "cpu")
        run("workload path", "tune", "--workload", str(tmp / "missing.json"), "--device", "cpu")

        # Import files: every field of a device and a winner with every wrong value, and hostile text.
        def import_case(name, document, raw=None):
            path = tmp / "import.json"
            path.write_text(raw if raw is not None else json.dumps(document))
            run(name, "db", "import", str(path), "--db", str(tmp / "import.db"))
        for section in ("devices", "winners"):
            for field in VALID_EXPORT[section][0]:
                for value in BAD_EXPORT_VALUES:
                    if section == "winners" and field == "config" and value == {}:
                        continue  # an empty config object is a valid record (the runtime ignores it)
                    if section == "devices" and field in ("extra",) and value == {}:
                        continue
                    if section == "devices" and field == "name" and value == "x":
                        continue
                    if section == "winners" and field == "spec_key" and value == "x":
                        continue
                    if section == "winners" and field == "bucket" and value == "x":
                        continue
                    if section == "winners" and field == "time_us" and value in (1.5, 9223372036854775808):
                        continue  # valid times
                    document = copy.deepcopy(VALID_EXPORT)
                    document[section][0][field] = value
                    import_case("import field", document,
                                json.dumps(document).replace("NaN", "1e400") if value != value else None)
        for key, value in (("format", "other"), ("version", 2), ("version", "1"), ("devices", {}), ("winners", 5)):
            import_case("import structure", dict(VALID_EXPORT, **{key: value}))
        for raw in ("", "[]", "[" * 100000 + "]" * 100000, "{\"a\":" * 100000, "\x00garbage"):
            import_case("import text", None, raw)
        run("import path", "db", "import", str(tmp), "--db", str(tmp / "import.db"))
        run("import path", "db", "import", str(tmp / "missing.json"), "--db", str(tmp / "import.db"))
        run("merge path", "db", "merge", str(tmp / "workload.json"), "--db", str(tmp / "import.db"))
        run("export path", "db", "export", str(tmp / "missing" / "x.json"), "--db", str(tmp / "import.db"))
        run("export path", "db", "export", str(tmp), "--db", str(tmp / "import.db"))

        # A damaged database is moved aside, and `db verify` says so (non-zero exit).
        damaged = tmp / "damaged.db"
        damaged.write_bytes(os.urandom(8192))
        p = run("damaged database", "db", "verify", "--db", str(damaged), message_on="stdout")
        if p is not None and "moved to" not in p.stdout + p.stderr:
            counts.failures.append("damaged database: db verify did not report the move")

        # A stored binary with a flipped bit: discarded, recompiled, reported by verify before and clean after.
        binaries = tmp / "binaries.db"
        workload = tmp / "one.json"
        workload.write_text(json.dumps({"shapes": [VALID_SHAPE]}))
        tune = [swajit, "tune", "--workload", str(workload), "--device", "cpu", "--quick-reps", "1", "--final-reps",
                "1", "--db", str(binaries)]
        subprocess.run(tune, capture_output=True, check=True, timeout=TIMEOUT_S)
        with sqlite3.connect(binaries) as db:
            rows = db.execute("SELECT hash, length(blob) FROM binaries").fetchall()
            for hash_, length in rows:  # one bit in the middle of every stored object
                blob = bytearray(db.execute("SELECT blob FROM binaries WHERE hash = ?", (hash_,)).fetchone()[0])
                blob[length // 2] ^= 0x10
                db.execute("UPDATE binaries SET blob = ? WHERE hash = ?", (bytes(blob), hash_))
        p = run("flipped bits", "db", "verify", "--db", str(binaries), message_on="stdout")
        if p is not None and p.stdout.count("SHA-256") != len(rows):
            counts.failures.append(f"flipped bits: verify reported {p.stdout.count('SHA-256')} of {len(rows)}")
        # The same tune again loads every kernel: each damaged one is discarded with a warning and recompiled.
        p = counts.run("flipped bits: reuse", tune + ["--restart"], env, expect_failure=False)
        if p is not None and p.stderr.count("fails its SHA-256 check") < len(rows):
            counts.failures.append(f"flipped bits: {p.stderr.count('fails its SHA-256 check')} of {len(rows)} "
                                   f"damaged binaries were reported when reused")
        verify = subprocess.run([swajit, "db", "verify", "--db", str(binaries)], capture_output=True, text=True)
        if verify.returncode != 0:
            counts.failures.append(f"flipped bits: still damaged after reuse:\n{verify.stdout}")

    print(f"{counts.cases} hostile invocations: {counts.clean} clean errors, {counts.crashes} crashes, "
          f"{counts.hangs} hangs, {counts.silent} accepted silently")
    for failure in counts.failures:
        print(failure)
    return 0 if not counts.failures else 1


def valid_shape_field(field, value):
    """Whether VALID_SHAPE with `field` set to `value` is still a valid shape (2 q heads, 1 kv head, kv_len 32)."""
    if field == "sink_logits":
        return isinstance(value, bool)
    if field in ("dtype", "kv_quant"):
        return value in (("bf16", "fp16") if field == "dtype" else ("none", "int8", "fp8"))
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    allowed = {"batch": range(1, 1 << 20), "kv_len": range(1, 1 << 20), "num_q_heads": range(1, 17),
               "num_kv_heads": (1, 2), "head_dim": (64, 128, 256), "page_size": range(1, 257), "q_seqlen": range(1, 9),
               "local_window": range(0, 1 << 31), "global_window": range(0, 1 << 31)}
    return value in allowed[field]


def has_gpu(swajit, env):
    info = subprocess.run([swajit, "info"], capture_output=True, text=True, env=env)
    return "cuda: no GPU" not in info.stdout


if __name__ == "__main__":
    sys.exit(main())
