"""Summarises benches/eviction-study/run's rounds: "<round> <variant> <clients> <latency ms>"."""

import collections
import statistics
import sys

latency = {}  # (round, clients) -> {variant: µs}
order = []
for line in open(sys.argv[1]):
    fields = line.split()
    if len(fields) != 4:
        continue  # a run pgbench could not finish prints no latency
    round_, variant, clients, ms = fields
    latency.setdefault((round_, int(clients)), {})[variant] = float(ms) * 1000
    if variant not in order:
        order.append(variant)

for clients in (1, 16):
    print(f"-- {clients} client(s): median µs [min-max]; paired ratio to plain, median "
          "[min-max]; paired difference, median")
    rounds = [by for (_, c), by in latency.items() if c == clients]
    for variant in order:
        values = [by[variant] for by in rounds if variant in by]
        pairs = [(by[variant], by["plain"]) for by in rounds if variant in by and "plain" in by]
        line = f"{variant:22s} {statistics.median(values):6.0f} [{min(values):.0f}-{max(values):.0f}]"
        if pairs:
            ratios = [v / p for v, p in pairs]
            differences = [v - p for v, p in pairs]
            line += (f"  {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
                     f"  {statistics.median(differences):+.0f} µs")
        print(line)
