#!/usr/bin/env python3
"""Packed sequences (cu_seqlens) cost the sum of their own work: one call on sequences of
lengths 1, 2, 4, ..., 4096 laid end to end (causal, H = 8, D = 64) against the same sequences
padded to the longest in a batch (key_lengths, the way without packing), and against the
prediction Σ len² / 4096² × the time of the longest alone. Medians of --repeats, in-process.

  python3 bench/packed_sequences.py [--threads 1] [--repeats 5]
"""
import argparse

import numpy as np

import longattn
from compare_frameworks import median_seconds as seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--longest", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    a = parser.parse_args()
    lengths = [1 << i for i in range(a.longest.bit_length()) if 1 << i <= a.longest]
    total, longest = sum(lengths), max(lengths)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, a.heads, total, a.d), dtype=np.float32) for _ in range(3))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    packed = seconds(lambda: longattn.attention(q, k, v, causal=True, cu_seqlens=(offsets, offsets),
                                                threads=a.threads), a.repeats)
    one = q[:, :, :longest]
    alone = seconds(lambda: longattn.attention(one, one, one, causal=True, threads=a.threads), a.repeats)
    # Without packing: every sequence padded to the longest, its padding hidden by key_lengths.
    padded = np.zeros((len(lengths), a.heads, longest, a.d), dtype=np.float32)
    for s, (start, n) in enumerate(zip(offsets, lengths)):
        padded[s, :, :n] = q[0, :, start:start + n]
    batch = seconds(lambda: longattn.attention(padded, padded, padded, causal=True, threads=a.threads,
                                               key_lengths=np.array(lengths)), a.repeats)
    predicted = alone * sum(n * n for n in lengths) / longest ** 2
    print(f"isa {longattn.isa()}, {a.threads} thread(s), H = {a.heads}, D = {a.d}, causal; "
          f"{len(lengths)} sequences of {lengths[0]} … {longest} tokens ({total} in all)")
    print(f"packed (cu_seqlens)         {packed * 1e3:9.2f} ms")
    print(f"Σ len² prediction           {predicted * 1e3:9.2f} ms  (the longest alone: {alone * 1e3:.2f} ms; "
          f"packed / prediction = {packed / predicted:.2f})")
    print(f"padded batch + key_lengths  {batch * 1e3:9.2f} ms  ({batch / packed:.2f}x packed; "
          f"max len² · S would be {alone * len(lengths) * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
