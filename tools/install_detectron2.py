#!/usr/bin/env python3
"""Install detectron2 into the running interpreter's environment (v0.6 by default, or any source).

Sources (``--source``):
* nothing: an importable detectron2 is used untouched; otherwise the official v0.6 Python code
  from the PyPI sdist ``pb1-detectron2==0.6`` (it carries no C++ sources);
* a local checkout (a folder holding ``setup.py`` and ``detectron2/``), e.g. detectron2 main;
* a pip requirement, e.g. ``git+https://github.com/facebookresearch/detectron2.git``.

A checkout is copied first (yours is never modified). Its C++/CUDA ops are built when the source
has them, a C++ compiler is on PATH and a CUDA toolkit is found (``CUDA_HOME``); otherwise the
Python code is installed alone (``ext_modules=[]``). ``--python-files-into DIR`` instead puts only
the Python files and model-zoo configs into ``DIR/detectron2`` (of a wheel too, never its ``.so``),
to be put first on ``PYTHONPATH``.

Compatibility fixes, each applied only to files that need it and checked afterwards (a file that
still needs one after the fix stops the install): 1. a module-level ``from detectron2 import _C``
-> optional import (v0.6: 4 files; main: none, since its COCOEvaluator falls back by itself when
``fast_eval_api`` cannot import ``_C``); 2. ``Image.LINEAR`` (gone in Pillow 10) -> ``BILINEAR``;
3. ``np.int`` / ``np.float`` / ``np.bool`` (gone in numpy 1.24) -> builtins; 4. ``pkg_resources``
(gone with setuptools >= 81) in ``model_zoo.py`` -> a path next to the file (v0.6 and main);
5. ``detectron2.export`` importing its caffe2 API at import time -> only when caffe2 is
importable, as upstream did in 2022 (v0.6; ``TracingAdapter``, for ONNX, needs no caffe2). For
``setup.py``: no extension when Python-only, and the model zoo's configs shipped from
``detectron2/model_zoo/configs`` when there is no top-level ``configs/`` (the v0.6 sdist).

Run with the Python of the environment to install into:
``.venv/bin/python tools/install_detectron2.py [--source SRC]``.
"""

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

DEFAULT_SOURCE = "pb1-detectron2==0.6"
# What pip downloaded, kept beside the environment.
DOWNLOADS = os.path.join(sys.prefix, "share", "detectron2-sources")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_C_LINE = re.compile(r"^from detectron2 import _C\n", re.M)
_C_OPTIONAL = (
    "try:\n"
    "    from detectron2 import _C\n"
    "except ImportError:  # installed without the C++/CUDA extension\n"
    "    _C = None\n"
)
# np.int / np.float / np.bool, but not np.int64, np.float32, np.bool_ ...
_NP_ALIAS = re.compile(r"\bnp\.(int|float|bool)\b(?![\w])")
_PKG_RESOURCES_IMPORT = re.compile(r"^import pkg_resources\n", re.M)
_PKG_RESOURCES_CALL = re.compile(
    r'pkg_resources\.resource_filename\(\s*"detectron2\.model_zoo",\s*'
    r'os\.path\.join\("configs", config_path\)\s*\)'
)
_CONFIG_PATH = 'os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", config_path)'
_EXPORT_API = re.compile(r"^from \.api import \*\n", re.M)
_EXPORT_API_OPTIONAL = (
    "try:\n"
    "    from caffe2.proto import caffe2_pb2 as _caffe2_pb2  # noqa: F401  (caffe2 is optional)\n"
    "except ImportError:\n"
    "    pass\n"
    "else:\n"
    "    from .api import *\n"
)
_EXPORT_INIT = "detectron2/export/__init__.py"
_FAST_EVAL = "detectron2/evaluation/fast_eval_api.py"
_COCO_EVAL = "detectron2/evaluation/coco_evaluation.py"


def _consumer_guards_fast_eval(src_dir):
    """Whether COCOEvaluator imports fast_eval_api inside ``try`` (detectron2 after v0.6)."""
    path = os.path.join(src_dir, _COCO_EVAL)
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.search(r"^try:\n\s+from detectron2\.evaluation\.fast_eval_api import", text, re.M)


def _needs_optional_c(rel, text, src_dir):
    if rel == _FAST_EVAL and _consumer_guards_fast_eval(src_dir):
        return False
    return bool(_C_LINE.search(text))


def _fix_pkg_resources(text):
    text, n_import = _PKG_RESOURCES_IMPORT.subn("", text)
    text, n_call = _PKG_RESOURCES_CALL.subn(_CONFIG_PATH, text)
    return text, n_import + n_call


# (what it fixes, needed(rel, text, src_dir) -> bool, fix(text) -> (new text, replacements))
SOURCE_FIXES = [
    (
        "optional C++ extension import",
        _needs_optional_c,
        lambda text: _C_LINE.subn(_C_OPTIONAL, text, count=1),
    ),
    (
        "Image.LINEAR removed in Pillow 10",
        lambda rel, text, src: "Image.LINEAR" in text,
        lambda text: (text.replace("Image.LINEAR", "Image.BILINEAR"), text.count("Image.LINEAR")),
    ),
    (
        "numpy aliases removed in numpy 1.24",
        lambda rel, text, src: bool(_NP_ALIAS.search(text)),
        lambda text: _NP_ALIAS.subn(r"\1", text),
    ),
    (
        "caffe2 export API only when caffe2 is importable",
        lambda rel, text, src: rel == _EXPORT_INIT and bool(_EXPORT_API.search(text)),
        lambda text: _EXPORT_API.subn(_EXPORT_API_OPTIONAL, text, count=1),
    ),
    (
        "pkg_resources gone with setuptools >= 81",
        lambda rel, text, src: "pkg_resources" in text,
        _fix_pkg_resources,
    ),
]


def fix_source(src_dir):
    """
    Apply every fix in :data:`SOURCE_FIXES` to the files under ``src_dir/detectron2`` that need it.

    Args:
        src_dir (str): the folder holding the ``detectron2`` package.

    Returns:
        list[tuple[str, str, int]]: (file relative to ``src_dir``, fix, places) for each change.
    """
    changes = []
    for root, _, files in os.walk(os.path.join(src_dir, "detectron2")):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src_dir).replace(os.sep, "/")
            with open(path, encoding="utf-8") as f:
                text = f.read()
            new_text = text
            for why, needed, fix in SOURCE_FIXES:
                if not needed(rel, new_text, src_dir):
                    continue
                new_text, n = fix(new_text)
                if n == 0 or needed(rel, new_text, src_dir):
                    raise SystemExit(
                        f"install_detectron2: {rel} needs the fix '{why}', but it did not apply "
                        "to this source; fix the file by hand or use another detectron2"
                    )
                changes.append((rel, why, n))
            if new_text != text:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new_text)
    return changes


def fix_setup(src_dir, build_ops):
    """
    Adapt ``src_dir/setup.py``: no extension unless ``build_ops``; ship the model zoo's configs
    from inside the package when the source has no top-level ``configs/``.

    Args:
        src_dir (str): the source tree.
        build_ops (bool): keep detectron2's C++/CUDA extension.

    Returns:
        list[tuple[str, str, int]]: the changes, as in :func:`fix_source`.
    """
    edits = []
    if not build_ops:
        edits.append(("build no C++ extension", "ext_modules=get_extensions(),", "ext_modules=[],"))
    if not os.path.isdir(os.path.join(src_dir, "configs")):
        edits.append(
            (
                "ship model_zoo/configs (there is no top-level configs/ to copy them from)",
                'package_data={"detectron2.model_zoo": get_model_zoo_configs()},',
                'package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},',
            )
        )
    path = os.path.join(src_dir, "setup.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    changes = []
    for why, old, new in edits:
        if old not in text:
            raise SystemExit(f"install_detectron2: setup.py has no '{old}'; cannot {why}")
        changes.append(("setup.py", why, text.count(old)))
        text = text.replace(old, new)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return changes


def why_no_ops(src_dir):
    """
    Args:
        src_dir (str): the source tree.

    Returns:
        str or None: why the C++/CUDA ops cannot be built here, or None when they can.
    """
    if not os.path.isdir(os.path.join(src_dir, "detectron2", "layers", "csrc")):
        return "the source has no C++ files"
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return "no C++ compiler on PATH"
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None:
        return "no CUDA toolkit found (set CUDA_HOME)"
    return None


def _run(cmd, env=None):
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def _unpack(archive, dest):
    """Extract an sdist, a source zip or a wheel; return the folder holding ``detectron2/``."""
    if archive.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    else:
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest, [n for n in z.namelist() if not n.endswith((".so", ".pyd"))])
    for root, dirs, _ in os.walk(dest):
        if os.path.isfile(os.path.join(root, "detectron2", "__init__.py")):
            return root
        dirs.sort()
    raise SystemExit(f"install_detectron2: {os.path.basename(archive)} holds no detectron2 package")


def get_source(source, workdir, download_args=()):
    """
    Copy a checkout, or download and unpack a pip requirement, into ``workdir``.

    Args:
        source (str): a folder or a pip requirement.
        workdir (str): an empty folder.
        download_args (list[str]): extra ``pip download`` arguments.

    Returns:
        str: the folder (under ``workdir``) that holds ``detectron2/``.
    """
    if os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, "detectron2", "__init__.py")):
            raise SystemExit(f"install_detectron2: {source} holds no detectron2/ package")
        dest = os.path.join(workdir, "src")
        ignore = shutil.ignore_patterns(".git", "build", "*.so", "__pycache__", "*.egg-info")
        shutil.copytree(source, dest, ignore=ignore, symlinks=True)
        return dest
    download = os.path.join(workdir, "download")
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation"]
    _run(pip + list(download_args) + ["-d", download, source])
    files = os.listdir(download)
    if len(files) != 1:
        raise SystemExit(f"install_detectron2: expected one file for {source}, got {files}")
    archive = os.path.join(download, files[0])
    os.makedirs(DOWNLOADS, exist_ok=True)
    shutil.copy2(archive, DOWNLOADS)  # kept for offline reinstalls and the installer's test
    return _unpack(archive, os.path.join(workdir, "src"))


def _atomic_dir():
    """The project's atomic folder writer, loaded from its file (the package needs detectron2)."""
    path = os.path.join(_REPO, "sar_lora_dino", "utils", "io.py")
    spec = importlib.util.spec_from_file_location("_sar_lora_dino_io", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.atomic_dir


def copy_python_files(src_dir, target):
    """
    Put ``detectron2/**/*.py`` and the model zoo's configs of ``src_dir`` into
    ``target/detectron2`` (replacing what is there), nothing else.

    Args:
        src_dir (str): folder holding ``detectron2/`` (and maybe a top-level ``configs/``).
        target (str): the folder to put first on ``PYTHONPATH``.
    """
    package = os.path.join(src_dir, "detectron2")
    configs = os.path.join(package, "model_zoo", "configs")
    if not os.path.isdir(configs):
        configs = os.path.join(src_dir, "configs")  # a checkout: setup.py copies them in
    with _atomic_dir()(target, overwrite=True) as tmp:
        dest = os.path.join(tmp, "detectron2")
        shutil.copytree(package, dest, ignore=lambda d, names: _not_python(d, names, configs))
        shutil.copytree(configs, os.path.join(dest, "model_zoo", "configs"), dirs_exist_ok=True)


def _not_python(folder, names, configs):
    if os.path.abspath(folder) == os.path.abspath(configs):
        return names
    return [n for n in names if not (n.endswith(".py") or os.path.isdir(os.path.join(folder, n)))]


def _check_import(extra_path=None):
    code = (
        "import detectron2, detectron2.engine, detectron2.evaluation, detectron2.export; "
        "from detectron2 import "
        "model_zoo; model_zoo.get_config('common/models/retinanet.py'); import importlib.util; "
        "ops = 'yes' if importlib.util.find_spec('detectron2._C') else 'no'; "
        "print(f'detectron2 {detectron2.__version__} at {detectron2.__file__}, C++ ops: {ops}')"
    )
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra_path, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"install_detectron2: detectron2 does not work:\n{out.stderr[-3000:]}")
    return out.stdout.strip()


def _report(changes):
    for rel, why, n in changes:
        print(f"  fixed {rel}: {why} ({n} place{'s' if n > 1 else ''})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", help=f"checkout folder or pip requirement ({DEFAULT_SOURCE})")
    parser.add_argument("--python-files-into", metavar="DIR", help="only copy the fixed .py files")
    parser.add_argument(
        "--download-arg", action="append", default=[], help="extra pip download argument"
    )
    args = parser.parse_args(argv)

    if args.source is None and args.python_files_into is None:
        if importlib.util.find_spec("detectron2") is not None:
            print(f"install_detectron2: using the installed {_check_import()}")
            return
    if importlib.util.find_spec("torch") is None:
        raise SystemExit("install_detectron2: install torch first (detectron2's setup.py needs it)")
    source = args.source or DEFAULT_SOURCE

    with tempfile.TemporaryDirectory(prefix="d2-source-") as tmp:
        src = get_source(source, tmp, args.download_arg)
        _report(fix_source(src))
        if args.python_files_into:
            copy_python_files(src, args.python_files_into)
            found = _check_import(os.path.abspath(args.python_files_into))
            print(f"install_detectron2: Python files of {source} only: {found}")
            return
        reason = why_no_ops(src)
        _report(fix_setup(src, build_ops=reason is None))
        env = dict(os.environ, FORCE_CUDA="1") if reason is None else None
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", src], env=env)
    how = "with its C++/CUDA ops" if reason is None else f"Python only ({reason})"
    print(f"install_detectron2: installed {source}, {how}: {_check_import()}")


if __name__ == "__main__":
    main()
