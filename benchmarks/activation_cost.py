"""Print forward and forward+backward cost of every catalog activation, beside a memory copy.

Runs the lab's ``cost`` experiment (ops interleaved in one process, fresh random order each
round, paired per-round ratios) and prints its rows as a Markdown table of ratios.

    .venv/bin/python benchmarks/activation_cost.py            # every single-input activation
    .venv/bin/python benchmarks/activation_cost.py --quick    # the seven the explainer names
"""

from __future__ import annotations

import argparse
import platform

import torch

import gradsight.lab as lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer activations, sizes, rounds")
    args = parser.parse_args()
    result = lab.run("cost", quick=args.quick)
    biggest = max(r["elements"] for r in result.rows)
    print(f"# activation cost, {biggest:,} float32 elements, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)")
    print("| op | fwd ns/el | fwd+bwd ns/el | fwd+bwd ÷ copy | fwd+bwd ÷ relu (IQR) |")
    print("|---|---:|---:|---:|---:|")
    for r in result.rows:
        if r["elements"] != biggest:
            continue
        print(f"| {r['op']} | {r['fwd_ns_per_el']:.2f} | {r['fwd_bwd_ns_per_el']:.2f} "
              f"| {r['fwd_bwd_x_copy']:.2f} | {r['fwd_bwd_x_relu']:.2f} "
              f"({r['x_relu_q25']:.2f}–{r['x_relu_q75']:.2f}) |")
    for claim in result.claims:
        print(f"\n{claim.verdict}: {claim.claim}\n  {claim.explanation}")


if __name__ == "__main__":
    main()
