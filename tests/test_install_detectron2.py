"""tools/install_detectron2.py: fixes only where a detectron2 source needs them, checkouts too."""

import glob
import importlib.util
import os
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "install_detectron2", os.path.join(REPO, "tools", "install_detectron2.py")
)
installer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(installer)

# What the v0.6 sdist needs on today's numpy, Pillow and setuptools (REFERENCE section 4), and
# for detectron2.export without caffe2.
V06_FIXES = {
    "detectron2/evaluation/fast_eval_api.py": "optional C++ extension import",
    "detectron2/layers/deform_conv.py": "optional C++ extension import",
    "detectron2/layers/roi_align_rotated.py": "optional C++ extension import",
    "detectron2/layers/rotated_boxes.py": "optional C++ extension import",
    "detectron2/data/transforms/transform.py": "Image.LINEAR removed in Pillow 10",
    "detectron2/data/build.py": "numpy aliases removed in numpy 1.24",
    "detectron2/structures/masks.py": "numpy aliases removed in numpy 1.24",
    "detectron2/evaluation/pascal_voc_evaluation.py": "numpy aliases removed in numpy 1.24",
    "detectron2/evaluation/sem_seg_evaluation.py": "numpy aliases removed in numpy 1.24",
    "detectron2/utils/visualizer.py": "numpy aliases removed in numpy 1.24",
    "detectron2/utils/video_visualizer.py": "numpy aliases removed in numpy 1.24",
    "detectron2/model_zoo/model_zoo.py": "pkg_resources gone with setuptools >= 81",
    "detectron2/export/__init__.py": "caffe2 export API only when caffe2 is importable",
}


@pytest.fixture(scope="module")
def v06_checkout(tmp_path_factory):
    """The extracted v0.6 sdist that `make setup` downloaded, standing in for a checkout."""
    archives = glob.glob(os.path.join(installer.DOWNLOADS, "pb1-detectron2-0.6.tar.gz"))
    if not archives:
        pytest.skip(f"no v0.6 sdist in {installer.DOWNLOADS} (run make setup on a fresh venv)")
    dest = tmp_path_factory.mktemp("sdist")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(dest, filter="data")
    return str(dest / "pb1-detectron2-0.6")


def test_v06_gets_exactly_its_fixes_and_a_python_only_setup(tmp_path, v06_checkout):
    src = installer.get_source(v06_checkout, str(tmp_path))
    assert {rel: why for rel, why, _ in installer.fix_source(src)} == V06_FIXES
    assert installer.fix_source(src) == []  # nothing left that needs a fix
    assert installer.why_no_ops(src) == "the source has no C++ files"
    assert [why for _, why, _ in installer.fix_setup(src, build_ops=False)] == [
        "build no C++ extension",
        "ship model_zoo/configs (there is no top-level configs/ to copy them from)",
    ]
    with open(os.path.join(v06_checkout, "detectron2/model_zoo/model_zoo.py")) as f:
        assert "pkg_resources" in f.read()  # the user's checkout is left as it was


def test_checkout_python_files_are_copied_with_the_model_zoo_configs(tmp_path, v06_checkout):
    src, target = installer.get_source(v06_checkout, str(tmp_path)), tmp_path / "d2"
    installer.fix_source(src)
    installer.copy_python_files(src, str(target))
    copied = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    python = {p for p in copied if not p.startswith("detectron2/model_zoo/configs/")}
    assert python and all(p.endswith(".py") for p in python)
    assert "detectron2/model_zoo/configs/common/models/retinanet.py" in copied
    with open(target / "detectron2/model_zoo/model_zoo.py") as f:
        assert "pkg_resources" not in f.read()  # the fixed copy, which finds configs beside it


def _tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return str(root)


def test_main_like_source_gets_only_the_model_zoo_fix(tmp_path):
    # detectron2 main: COCOEvaluator imports the fast evaluator inside try and falls back itself.
    fast_eval = "import copy\nfrom detectron2 import _C\n"
    src = _tree(
        tmp_path,
        {
            "detectron2/__init__.py": "",
            "detectron2/evaluation/coco_evaluation.py": (
                "try:\n    from detectron2.evaluation.fast_eval_api import COCOeval_opt\n"
                "except ImportError:\n    COCOeval_opt = None\n"
            ),
            "detectron2/evaluation/fast_eval_api.py": fast_eval,
            "detectron2/model_zoo/model_zoo.py": (
                "import os\nimport pkg_resources\n\ndef get_config_file(config_path):\n"
                '    return pkg_resources.resource_filename(\n        "detectron2.model_zoo", '
                'os.path.join("configs", config_path)\n    )\n'
            ),
            "detectron2/structures/boxes.py": "x = np.int64(1)  # np.int64 is fine\n",
        },
    )
    changes = installer.fix_source(src)
    assert [(rel, why) for rel, why, _ in changes] == [
        ("detectron2/model_zoo/model_zoo.py", "pkg_resources gone with setuptools >= 81")
    ]
    with open(os.path.join(src, "detectron2/evaluation/fast_eval_api.py")) as f:
        assert f.read() == fast_eval
    with open(os.path.join(src, "detectron2/model_zoo/model_zoo.py")) as f:
        assert "os.path.dirname(os.path.abspath(__file__))" in f.read()


def test_a_needed_fix_that_does_not_apply_names_the_file(tmp_path):
    src = _tree(
        tmp_path,
        {
            "detectron2/__init__.py": "",
            "detectron2/utils/env.py": "import pkg_resources\npkg_resources.require('x')\n",
        },
    )
    with pytest.raises(SystemExit, match="detectron2/utils/env.py needs the fix 'pkg_resources"):
        installer.fix_source(src)
