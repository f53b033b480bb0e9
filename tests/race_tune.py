#!/usr/bin/env python3
"""Four `swajit tune` processes (CPU backend, tiny shapes) start at once on a database that does not exist yet, for
several rounds. Every process must exit 0, no file may be moved aside, and every winner the four tuned must be in the
live file: the creation race once lost half of them into a file moved aside while it was being initialized.

usage: race_tune.py SWAJIT_BINARY [ROUNDS]"""
import json
import pathlib
import subprocess
import sys
import tempfile

PROCESSES = 4
TIMEOUT_S = 600  # one round of four tiny tunes takes seconds; this only stops a hang
OPEN_ROUNDS, OPENERS = 50, 8  # the cheap stage: processes that only open a new database (the old code moved one
                              # aside in about 1 round of 10 here)


def open_race(swajit: str, tmp: pathlib.Path) -> int:
    """OPENERS processes run `db show` on one new database at once, OPEN_ROUNDS times; returns files moved aside."""
    moved = 0
    for round_index in range(OPEN_ROUNDS):
        db = tmp / f"open{round_index}" / "tuning.db"
        runs = [subprocess.Popen([swajit, "db", "show", "--db", str(db)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for _ in range(OPENERS)]
        for run in runs:
            _, err = run.communicate(timeout=TIMEOUT_S)
            if run.returncode != 0:
                print(f"open round {round_index}: exit {run.returncode}: {err}")
                moved += 1
        moved += len(list(db.parent.glob("tuning.db.corrupt-*")))
    print(f"{OPEN_ROUNDS} rounds x {OPENERS} processes opening a new database: {moved} moved aside or failed")
    return moved


def main() -> int:
    swajit = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    # One shape per process; batch 1, 2, 4, 8 fall in four buckets, so each process stores its own winner.
    shapes = [{"batch": 1 << i, "kv_len": 32, "num_q_heads": 2, "num_kv_heads": 1, "head_dim": 64, "page_size": 16,
               "local_window": 16} for i in range(PROCESSES)]
    lost = 0
    with tempfile.TemporaryDirectory(prefix="swajit_race_") as tmp:
        if open_race(swajit, pathlib.Path(tmp)):
            return 1
        workload = pathlib.Path(tmp) / "shapes.json"
        workload.write_text(json.dumps({"shapes": shapes}))
        for round_index in range(rounds):
            db = pathlib.Path(tmp) / f"round{round_index}" / "tuning.db"  # neither file nor directory exists yet
            runs = [subprocess.Popen([swajit, "tune", "--workload", str(workload), "--shard", f"{i}/{PROCESSES}",
                                      "--device", "cpu", "--quick-reps", "1", "--final-reps", "1", "--db", str(db)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for i in range(PROCESSES)]
            for i, run in enumerate(runs):
                out, err = run.communicate(timeout=TIMEOUT_S)
                if run.returncode != 0:
                    print(f"round {round_index}: process {i} exited {run.returncode}\n{out}\n{err}")
                    return 1
            moved = sorted(p.name for p in db.parent.glob("tuning.db.corrupt-*"))
            exported = db.parent / "winners.json"
            subprocess.run([swajit, "db", "export", str(exported), "--db", str(db)], capture_output=True, check=True)
            buckets = {w["bucket"] for w in json.loads(exported.read_text())["winners"]}
            # The bucket starts with the batch (b<batch>_kv<visible KV>): one per process.
            missing = [f"b{s['batch']}_*" for s in shapes
                       if not any(b.startswith(f"b{s['batch']}_") for b in buckets)]
            lost += len(missing)
            print(f"round {round_index}: {len(buckets)} of {PROCESSES} winners in the live file; moved aside: "
                  f"{moved or 'none'}; missing: {missing or 'none'}")
            if missing or moved:
                return 1
    print(f"{rounds} rounds x {PROCESSES} processes: 0 winners lost, 0 files moved aside")
    return 0


if __name__ == "__main__":
    sys.exit(main())
