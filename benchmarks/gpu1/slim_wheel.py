"""Drop files a Linux x86_64 run never reads from a wheel, in place, so the bundle travels.

    python benchmarks/gpu1/slim_wheel.py WHEEL --drop 'pkg/models/*' ...

The members matching a ``--drop`` glob leave the archive and its ``RECORD``; every other member
is copied byte for byte with its permissions, so the remaining ``RECORD`` hashes still hold and
pip installs the wheel as usual. Used by fetch_wheels.sh for two wheels that carry every
platform's binaries: blingfire (42 MB: Windows/macOS libraries and tokenizer models; cama uses
only the sentence breaker compiled into the Linux library) and PuLP (16 MB: CBC for six
platforms; snakemake's scheduler runs the Linux x86_64 one).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import zipfile
from pathlib import Path


def slim(wheel: Path, drop: list[str]) -> tuple[int, int]:
    """Rewrite ``wheel`` without the members matching ``drop``; return (kept, dropped)."""
    tmp = wheel.with_suffix(".tmp")
    kept = dropped = 0
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        gone = {
            i.filename for i in src.infolist() if any(fnmatch.fnmatch(i.filename, g) for g in drop)
        }
        for info in src.infolist():
            if info.filename in gone:
                dropped += 1
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(x for x in lines if x.split(",", 1)[0] not in gone).encode()
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
            kept += 1
    os.replace(tmp, wheel)
    return kept, dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--drop", nargs="+", required=True, help="globs of archive members")
    args = parser.parse_args(argv)
    before = args.wheel.stat().st_size
    kept, dropped = slim(args.wheel, args.drop)
    if not dropped:
        print(f"{args.wheel.name}: no member matches {args.drop}", file=sys.stderr)
        return 1
    print(
        f"{args.wheel.name}: {dropped} members dropped, {kept} kept, "
        f"{before / 2**20:.1f} -> {args.wheel.stat().st_size / 2**20:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
