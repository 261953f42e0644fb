"""Check that a wheel bundle plus the GPU image's packages cover cama's dependencies.

    python benchmarks/gpu1/check_wheels.py .whl-gpu1

Reads every wheel's ``Requires-Dist`` (markers evaluated for CPython 3.12.3 on Linux x86_64,
extras left out) and cama's own ``pyproject.toml`` dependencies, and checks that each one is met
by a wheel of the bundle (version checked) or by a package of the image
(``image-packages.txt``; version checked where it was read there). It also checks that every
wheel installs on the image (cp312 or pure Python, manylinux x86_64) and that no package comes
twice. Prints what is met by what and exits 1 on a missing or mismatched requirement, or a
wheel that would not install. Requirements named with ``--allow-missing`` are reported, not
failed (cama's test-only ``jieba`` ships no wheel).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# The image's Python: 3.12.3, glibc-based x86_64 (manylinux up to 2_39 installs there).
ENV = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
TAGS = set(cpython_tags((3, 12), platforms=PLATFORMS)) | set(
    compatible_tags((3, 12), "cp312", platforms=PLATFORMS)
)


def read_image(path: Path) -> dict[str, Version | None]:
    image = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            image[canonicalize_name(name)] = Version(version) if version else None
    return image


def read_bundle(folder: Path) -> tuple[dict[str, tuple[Version, list[str], Path]], list[str]]:
    bundle, errors = {}, []
    for wheel in sorted(folder.glob("*.whl")):
        name, version, _, tags = parse_wheel_filename(wheel.name)
        if not tags & TAGS:
            errors.append(f"{wheel.name}: no tag installs on CPython 3.12 manylinux x86_64")
        if name in bundle:
            errors.append(f"{name}: two wheels ({bundle[name][2].name}, {wheel.name})")
        with zipfile.ZipFile(wheel) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            requires = Parser().parsestr(z.read(meta).decode()).get_all("Requires-Dist") or []
        bundle[name] = (version, requires, wheel)
    return bundle, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="folder of .whl files")
    parser.add_argument("--image", type=Path, default=HERE / "image-packages.txt")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--allow-missing", nargs="*", default=["jieba"])
    args = parser.parse_args(argv)

    image = read_image(args.image)
    bundle, errors = read_bundle(args.bundle)
    allowed = {canonicalize_name(n) for n in args.allow_missing}
    cama = tomllib.loads(args.pyproject.read_text())["project"]["dependencies"]
    needs = [("cama", r) for r in cama] + [
        (str(name), r) for name, (_, reqs, _) in bundle.items() for r in reqs
    ]
    used: set[str] = set()
    notes = []
    for who, text in needs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(ENV):
            continue
        name = canonicalize_name(req.name)
        if name in bundle:
            version = bundle[name][0]
            where = "bundle"
        elif name in image:
            version = image[name]
            where = "image"
        elif name in allowed:
            notes.append(f"{who} needs {req}: not carried (--allow-missing)")
            continue
        else:
            errors.append(f"{who} needs {req}: in neither the bundle nor the image")
            continue
        used.add(name)
        if version is None:
            if str(req.specifier):
                notes.append(f"{who} needs {req}: the image has {name}, version not read")
        elif not req.specifier.contains(version, prereleases=True):
            errors.append(f"{who} needs {req}: the {where} has {name} {version}")
    for name in sorted(set(bundle) - used):
        notes.append(f"{bundle[name][2].name}: nothing needs it")
    for name in sorted(set(bundle) & set(image)):
        notes.append(f"{name}: carried {bundle[name][0]} shadows the image's {image[name] or ''}")

    size = sum(w.stat().st_size for _, _, w in bundle.values())
    print(f"{len(bundle)} wheels, {size / 2**20:.1f} MiB in {args.bundle}")
    for line in notes:
        print("note:", line)
    for line in errors:
        print("ERROR:", line)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
