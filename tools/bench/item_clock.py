#!/usr/bin/env python3
"""Places a persistent prefill grid's time from SWAJIT_PREFILL_ITEM_CLOCK=1 output (lines "IC block sm q_head row0
tiles begin_ns end_ns", one per item, printed by the kernel's first consumer thread). Per launch (items grouped by
start time): the span, when each block's last item ended (the tail: the span beyond the blocks' mean end), the blocks'
busy share, and a least-squares fit of an item's time = overhead + tiles x per-tile time (the per-item cost beyond its
tiles). Usage: item_clock.py < log"""
import sys


def launches(items, gap_ns=10000):
    """Launch k: the k-th run of each block's items, a run ending where the block's next item starts over gap_ns
    after its previous one ended (within a launch a block starts its next item right away)."""
    by_block = {}
    for it in sorted(items, key=lambda it: it[5]):
        by_block.setdefault(it[0], []).append(it)
    groups = []
    for block_items in by_block.values():
        run = 0
        for i, it in enumerate(block_items):
            if i > 0 and it[5] - block_items[i - 1][6] > gap_ns:
                run += 1
            while len(groups) <= run:
                groups.append([])
            groups[run].append(it)
    return groups


def fit(points):
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return my, 0.0
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - slope * mx, slope


def main():
    items = []
    for line in sys.stdin:
        f = line.split()
        if len(f) == 8 and f[0] == "IC":
            items.append(tuple(int(v) for v in f[1:]))
    groups = list(launches(items))
    print(f"item_clock: {len(items)} items in {len(groups)} launches")
    for index, group in enumerate(groups):
        start = min(it[5] for it in group)
        span = max(it[6] for it in group) - start
        blocks = {}
        for it in group:
            blocks.setdefault(it[0], []).append(it)
        ends = [max(i[6] for i in b) - start for b in blocks.values()]
        firsts = [min(i[5] for i in b) - start for b in blocks.values()]
        busy = [sum(i[6] - i[5] for i in b) for b in blocks.values()]
        mean_end = sum(ends) / len(ends)
        overhead, per_tile = fit([(it[4], it[6] - it[5]) for it in group])
        tiles = sum(it[4] for it in group)
        print(f"launch {index}: {len(group)} items, {len(blocks)} blocks, {tiles} tiles, span {span / 1e3:.1f} us; "
              f"block first item at {min(firsts) / 1e3:.1f}..{max(firsts) / 1e3:.1f} us; last end min / mean / max "
              f"{min(ends) / 1e3:.1f} / {mean_end / 1e3:.1f} / {max(ends) / 1e3:.1f} us (tail {100 * (span - mean_end) / span:.1f}% "
              f"of the span); busy (consumer items) mean {sum(busy) / len(busy) / 1e3:.1f} us = "
              f"{100 * sum(busy) / len(busy) / span:.1f}% of the span; item time = {overhead / 1e3:.2f} us + tiles x "
              f"{per_tile / 1e3:.3f} us (tile-times per item overhead {overhead / per_tile if per_tile else 0:.2f})")
        by_tiles = {}
        for it in group:
            by_tiles.setdefault(it[4], []).append(it[6] - it[5])
        row = ", ".join(f"{t}: {sum(v) / len(v) / 1e3:.1f}" for t, v in sorted(by_tiles.items())[:: max(1, len(by_tiles) // 8)])
        print(f"  mean item us by tiles: {row}")


if __name__ == "__main__":
    main()
