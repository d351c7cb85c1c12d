#!/usr/bin/env python3
"""Install detectron2 v0.6 (Python code only) into the running interpreter's environment.

If an importable detectron2 is already present (for example one built from the official sources
with its C++/CUDA ops), it is used untouched. Otherwise the official v0.6 Python code is taken from
the PyPI sdist ``pb1-detectron2==0.6``, which carries no C++ sources, and installed without the
C++ extension after the compatibility fixes below. Each fix asserts that it applied, so a
different sdist fails loudly instead of installing half-fixed code.

Fixes (nothing else is changed):
1. ``from detectron2 import _C`` at module level (4 files) -> optional import; only ops we never
   use (deformable conv, rotated boxes, the fast COCO evaluator) need it.
2. ``Image.LINEAR`` (removed in Pillow 10) -> ``Image.BILINEAR`` (it was an alias).
3. ``np.int`` / ``np.float`` / ``np.bool`` (removed in numpy 1.24) -> builtins.
4. ``pkg_resources`` (gone with setuptools >= 81) -> a path next to ``model_zoo.py``.
5. ``detectron2.export`` imports its caffe2 API (``from caffe2.proto import ...``) at import
   time -> only when caffe2 is importable, as upstream did in 2022; ``TracingAdapter`` (ONNX
   export) needs no caffe2.
The sdist's ``setup.py`` is told to build no extension (``ext_modules=[]``) and to ship the
model zoo's config files (its glob for them runs from a folder the sdist does not have).

Run with the Python of the environment to install into:
``.venv/bin/python tools/install_detectron2.py``.
"""

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import tempfile

SDIST = "pb1-detectron2==0.6"

_C_IMPORT = "from detectron2 import _C\n"
_C_OPTIONAL = (
    "try:\n"
    "    from detectron2 import _C\n"
    "except ImportError:  # installed without the C++/CUDA extension\n"
    "    _C = None\n"
)
# np.int / np.float / np.bool, but not np.int64, np.float32, np.bool_ ...
_NP_ALIAS = re.compile(r"\bnp\.(int|float|bool)\b(?![\w])")

# (relative path, description, function(text) -> (new_text, number of replacements))
_FIXES = []


def _fix(path, why):
    def register(fn):
        _FIXES.append((path, why, fn))
        return fn

    return register


for _path in (
    "detectron2/layers/deform_conv.py",
    "detectron2/layers/rotated_boxes.py",
    "detectron2/layers/roi_align_rotated.py",
    "detectron2/evaluation/fast_eval_api.py",
):
    _fix(_path, "optional C++ extension import")(
        lambda text: (text.replace(_C_IMPORT, _C_OPTIONAL, 1), text.count(_C_IMPORT))
    )

_fix("detectron2/data/transforms/transform.py", "Image.LINEAR removed in Pillow 10")(
    lambda text: (text.replace("Image.LINEAR", "Image.BILINEAR"), text.count("Image.LINEAR"))
)

for _path in (
    "detectron2/data/build.py",
    "detectron2/structures/masks.py",
    "detectron2/evaluation/pascal_voc_evaluation.py",
    "detectron2/evaluation/sem_seg_evaluation.py",
    "detectron2/utils/visualizer.py",
    "detectron2/utils/video_visualizer.py",
):
    _fix(_path, "numpy aliases removed in numpy 1.24")(lambda text: _NP_ALIAS.subn(r"\1", text))


@_fix("detectron2/model_zoo/model_zoo.py", "pkg_resources gone with setuptools >= 81")
def _fix_model_zoo(text):
    old_import = "import pkg_resources\n"
    old_call = (
        "pkg_resources.resource_filename(\n"
        '        "detectron2.model_zoo", os.path.join("configs", config_path)\n'
        "    )"
    )
    new_call = 'os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", config_path)'
    n = text.count(old_import) + text.count(old_call)
    return text.replace(old_import, "").replace(old_call, new_call), (n if n == 2 else 0)


_EXPORT_API_IMPORT = "from .api import *\n"
_EXPORT_API_OPTIONAL = (
    "try:\n"
    "    from caffe2.proto import caffe2_pb2 as _caffe2_pb2  # noqa: F401  (caffe2 is optional)\n"
    "except ImportError:\n"
    "    pass\n"
    "else:\n"
    "    from .api import *\n"
)


@_fix("detectron2/export/__init__.py", "caffe2 export API only when caffe2 is importable")
def _fix_export_init(text):
    n = text.count(_EXPORT_API_IMPORT)
    return text.replace(_EXPORT_API_IMPORT, _EXPORT_API_OPTIONAL, 1), (n if n == 1 else 0)


@_fix("setup.py", "build no C++ extension (the sdist has no C++ sources)")
def _fix_setup(text):
    old = "ext_modules=get_extensions(),"
    return text.replace(old, "ext_modules=[],"), text.count(old)


@_fix(
    "setup.py", "ship model_zoo/configs (its glob looks for a top-level configs/ the sdist lacks)"
)
def _fix_setup_configs(text):
    old = 'package_data={"detectron2.model_zoo": get_model_zoo_configs()},'
    new = 'package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},'
    return text.replace(old, new), text.count(old)


def apply_fixes(src_dir):
    """Apply every fix under ``src_dir``; raise if one did not apply."""
    for rel, why, fn in _FIXES:
        path = os.path.join(src_dir, rel)
        if not os.path.isfile(path):
            raise SystemExit(f"install_detectron2: {rel} not found in {SDIST}; cannot apply: {why}")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new_text, n = fn(text)
        if n == 0:
            raise SystemExit(
                f"install_detectron2: fix '{why}' did not apply to {rel}; "
                f"this is not the {SDIST} sdist the fixes were written for"
            )
        with open(path, "w", encoding="utf-8") as f:
            f.write(new_text)
        print(f"  fixed {rel}: {why} ({n} place{'s' if n > 1 else ''})")
    leftovers = []
    for root, _, files in os.walk(os.path.join(src_dir, "detectron2")):
        for name in files:
            if name.endswith(".py"):
                p = os.path.join(root, name)
                with open(p, encoding="utf-8") as f:
                    text = f.read()
                if _NP_ALIAS.search(text) or "Image.LINEAR" in text or "pkg_resources" in text:
                    leftovers.append(os.path.relpath(p, src_dir))
    if leftovers:
        raise SystemExit(f"install_detectron2: unfixed incompatibilities remain in {leftovers}")


def _run(cmd):
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="reinstall even if importable")
    args = parser.parse_args()

    spec = importlib.util.find_spec("detectron2")
    if spec is not None and not args.force:
        print(f"install_detectron2: using the detectron2 already installed at {spec.origin}")
        return
    if importlib.util.find_spec("torch") is None:
        raise SystemExit(
            "install_detectron2: install torch first (detectron2's setup.py imports it)"
        )

    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="d2-sdist-") as tmp:
        _run(pip + ["download", "-q", "--no-deps", "--no-build-isolation", "-d", tmp, SDIST])
        archives = [f for f in os.listdir(tmp) if f.endswith((".tar.gz", ".zip"))]
        if len(archives) != 1:
            raise SystemExit(f"install_detectron2: expected one sdist of {SDIST}, got {archives}")
        with tarfile.open(os.path.join(tmp, archives[0])) as tar:
            tar.extractall(tmp, filter="data")
        src = os.path.join(tmp, archives[0][: -len(".tar.gz")])
        apply_fixes(src)
        _run(pip + ["install", "-q", "--no-build-isolation", src])
    _run(
        [
            sys.executable,
            "-c",
            "import detectron2.engine, detectron2.evaluation, detectron2.export; "
            "from detectron2 import model_zoo; "
            "model_zoo.get_config('common/models/retinanet.py')",
        ]
    )
    print("install_detectron2: detectron2 0.6 (Python only) installed")


if __name__ == "__main__":
    main()
