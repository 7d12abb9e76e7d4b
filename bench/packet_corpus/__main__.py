"""``python -m bench.packet_corpus --seed N --packets 30 --out DIR``: generate one seed."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from bench.packet_corpus.scenarios import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--packets", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    truth = generate(args.seed, args.packets, args.out)
    docs = [d for p in truth["packets"] for d in p["documents"]]
    formats = Counter(d["format"] for d in docs)
    outcomes = Counter(p["expected_outcome"] for p in truth["packets"])
    print(
        f"seed {args.seed}: {len(truth['packets'])} packets, {len(docs)} documents "
        f"in {time.perf_counter() - started:.1f} s -> {args.out}"
    )
    print("  formats:", dict(sorted(formats.items())))
    print("  outcomes:", dict(sorted(outcomes.items())))


if __name__ == "__main__":
    main()
