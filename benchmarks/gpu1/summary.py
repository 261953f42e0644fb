"""Print the one-GPU run's figures: IE F1 per set and model (eval/ie.json), bits per byte.

    python benchmarks/gpu1/summary.py results/eval/ie.json results/eval/bpb.json

The tables are the ones eval_ie and eval_bpb log (``cama.evaluate.ie.ie_table``,
``cama.evaluate.bpb.bpb_table``), so the call's output shows them. A file that does not exist
yet is named and skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    ie, bpb = (Path(a) for a in argv)
    if ie.exists():
        from cama.evaluate.ie import ie_table

        print(f"IE, F1 % (P/R) per set, from {ie}:\n{ie_table(json.loads(ie.read_text()))}\n")
    else:
        print(f"{ie}: not made yet")
    if bpb.exists():
        from cama.evaluate.bpb import bpb_table

        print(
            f"bits per byte on the held-out documents, from {bpb}:\n{bpb_table(json.loads(bpb.read_text()))}"
        )
    else:
        print(f"{bpb}: not made yet")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
