#!/usr/bin/env python
"""Build the wheels a machine without a package registry needs to install this project.

The target (default: the GPU machines we borrow) already has torch, torchvision, timm, opencv and
the packages listed in ``tools/gpu_machine_packages.txt``; everything else the project and its
Python-only detectron2 need is put into the wheelhouse: the patched detectron2 v0.6 wheel (the
fixes of tools/install_detectron2.py), this project's wheel, and the closure of their
requirements for the target Python (binary wheels downloaded for it, pure-Python sdists such as
antlr4-python3-runtime 4.9.3 built here). A requirement on a package the target has is skipped
only when it carries no upper bound. The wheelhouse is then checked with pip's own resolver
(``--dry-run --no-index``) against stand-ins of the target's packages.

Usage: ``python tools/build_wheelhouse.py --python-version 3.12 --dest wheelhouse``, then on the
target: ``pip install --no-index --find-links wheelhouse sar_lora_dino pb1-detectron2``.
"""

import argparse
import email.parser
import glob
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
import install_detectron2  # noqa: E402

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64"]
PLATFORMS += ["manylinux2014_x86_64", "manylinux1_x86_64"]
PIP = [sys.executable, "-m", "pip"]


def _run(cmd, **kw):
    print("  $", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def present_packages(path):
    """Names (canonical) of the packages the target machine already has."""
    with open(path, encoding="utf-8") as f:
        return {canonicalize_name(ln.strip()) for ln in f if ln.strip() and ln[0] != "#"}


def wheel_requirements(path, python_version):
    """Requires-Dist of a wheel that apply on Linux / CPython ``python_version`` (no extras)."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = email.parser.Parser().parsestr(z.read(meta).decode("utf-8"))
    env = {"python_version": python_version, "python_full_version": python_version + ".0"}
    env.update(sys_platform="linux", platform_system="Linux", extra="")
    env.update(implementation_name="cpython", platform_python_implementation="CPython")
    reqs = [Requirement(r) for r in msg.get_all("Requires-Dist") or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def _has_upper_bound(req):
    return any(s.operator in ("<", "<=", "==", "~=", "===") for s in req.specifier)


def build_detectron2(dest):
    """The patched, Python-only detectron2 v0.6 wheel (fixes from install_detectron2)."""
    with tempfile.TemporaryDirectory(prefix="d2-wheel-") as tmp:
        _run(PIP + ["download", "-q", "--no-deps", "--no-binary=:all:", "-d", tmp,
                    install_detectron2.SDIST])  # fmt: skip
        (archive,) = [f for f in os.listdir(tmp) if f.endswith(".tar.gz")]
        with tarfile.open(os.path.join(tmp, archive)) as tar:
            tar.extractall(tmp, filter="data")
        src = os.path.join(tmp, archive[: -len(".tar.gz")])
        install_detectron2.apply_fixes(src)
        _run(PIP + ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dest, src])


def fetch(req, dest, python_version):
    """Download a wheel of ``req`` for the target, or build one when only an sdist exists."""
    download = PIP + ["download", "-q", "--no-deps", "--only-binary=:all:", "-d", dest]
    download += ["--python-version", python_version, "--implementation", "cp"]
    download += [a for p in PLATFORMS for a in ("--platform", p)]
    if subprocess.run(download + [str(req)], capture_output=True).returncode == 0:
        return
    with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
        _run(PIP + ["wheel", "-q", "--no-deps", "-w", tmp, str(req)])
        for path in glob.glob(os.path.join(tmp, "*.whl")):
            tags = parse_wheel_filename(os.path.basename(path))[3]
            if not all(t.abi == "none" and t.platform == "any" for t in tags):
                raise SystemExit(
                    f"{req}: only an sdist with compiled code exists; cannot build it here"
                )
            os.replace(path, os.path.join(dest, os.path.basename(path)))


def _wheels(dest):
    """{canonical name: (path, version)} of the wheels in ``dest``."""
    have = {}
    for w in glob.glob(os.path.join(dest, "*.whl")):
        name, version = parse_wheel_filename(os.path.basename(w))[:2]
        have[canonicalize_name(name)] = (w, version)
    return have


def complete(dest, present, python_version):
    """Add wheels until every requirement is in ``dest`` or (unbounded) on the target."""
    done, specs = set(), {}
    while True:
        have = _wheels(dest)
        todo = [w for w, _ in have.values() if w not in done]
        if not todo:
            return
        for wheel in todo:
            done.add(wheel)
            if not os.path.exists(wheel):  # replaced by a narrower version meanwhile
                continue
            for req in wheel_requirements(wheel, python_version):
                name = canonicalize_name(req.name)
                specs[name] = specs.get(name, SpecifierSet()) & req.specifier
                if name in have:
                    if specs[name].contains(have[name][1], prereleases=True):
                        continue
                    os.remove(have[name][0])  # another requirement narrows it: fetch again
                elif name in present and not _has_upper_bound(req):
                    continue
                fetch(f"{req.name}{specs[name]}", dest, python_version)
                have = _wheels(dest)


def _stand_in(name, folder):
    """An empty wheel named like a package the target already has (for the resolver check)."""
    dist = name.replace("-", "_")
    path = os.path.join(folder, f"{dist}-999999-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        info = f"{dist}-999999.dist-info"
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 999999\n")
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")


def check(dest, present, python_version, targets):
    """pip's resolver installs ``targets`` from ``dest`` plus stand-ins of the target's packages."""
    have = {canonicalize_name(parse_wheel_filename(os.path.basename(w))[0])
            for w in glob.glob(os.path.join(dest, "*.whl"))}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wheelhouse-check-") as tmp:
        stand_ins = os.path.join(tmp, "present")
        os.makedirs(stand_ins)
        for name in present - have:
            _stand_in(name, stand_ins)
        cmd = PIP + ["install", "--dry-run", "--no-index", "--find-links", dest]
        cmd += ["--find-links", stand_ins, "--only-binary=:all:", "--target", tmp]
        cmd += ["--python-version", python_version, "--implementation", "cp"]
        cmd += [a for p in PLATFORMS for a in ("--platform", p)]
        # none of this machine's pip configuration or PIP_* variables (constraints, indexes)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        _run(cmd + targets, env={**env, "PIP_CONFIG_FILE": os.devnull})


def main(argv=None):
    """
    Args:
        argv (list[str] or None): command line; see ``--help``.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--python-version", default="3.12")
    p.add_argument("--dest", default=os.path.join(REPO, "wheelhouse"))
    p.add_argument("--present", default=os.path.join(TOOLS, "gpu_machine_packages.txt"),
                   help="packages the target machine already has, one per line")  # fmt: skip
    p.add_argument("--check-only", action="store_true")
    args = p.parse_args(argv)
    os.makedirs(args.dest, exist_ok=True)
    present = present_packages(args.present)
    if not args.check_only:
        build_detectron2(args.dest)
        _run(PIP + ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", args.dest, REPO])
        complete(args.dest, present, args.python_version)
    check(args.dest, present, args.python_version, ["sar_lora_dino", "pb1-detectron2"])
    print(
        f"wheelhouse ready: {args.dest} ({len(glob.glob(os.path.join(args.dest, '*.whl')))} wheels)"
    )


if __name__ == "__main__":
    main()
