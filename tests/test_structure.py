"""The code's shape (flags read only at the edges, no import cycles, one place per
default) and the suite's own rules."""

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from fewer_frames.models import frame_level_models, model_config
from testlib import CODE_DIR, PROJECT_ROOT, binary_launcher

BINARIES = {
    "train",
    "validate",
    "train_convert_model",
    "train_finetune",
    "eval_finetune",
    "inference",
    "export_model",
    "benchmark",
    "ensemble",
    "score_segments",
    "make_sample_data",
    "experiments",
    "extract_features",
}
PACKAGE = "fewer_frames"
# The one module that defines the shared flags and reads them into settings: the
# edge of the library, imported only by binaries.
FLAG_MODULE = "fewer_frames.config.command_line"
# The layers, bottom up: what each topic package may import besides itself.
# Models know nothing of training, evaluation or serving; inputs nothing of models.
_BELOW = ["system", "config", "inputs", "features", "models", "run_dirs", "evaluation"]
ALLOWED_IMPORTS = {
    "system": set(),
    "config": {"system"},
    "inputs": {"system", "config"},
    "features": {"system", "config", "inputs"},
    "models": {"system", "config", "inputs"},
    "run_dirs": {"system", "config", "inputs", "models"},
    "evaluation": {"system", "config", "inputs", "models", "run_dirs"},
    "training": set(_BELOW),
    "serving": set(_BELOW),
    "pipelines": {*_BELOW, "serving"},
    "benchmarks": {*_BELOW, "training", "serving", "pipelines"},
}
# The original code's module names, kept as file names for its readers.
ORIGINAL_MODULES = {
    "inputs/readers.py",
    "models/frame_level_models.py",
    "models/video_level_models.py",
    "models/losses.py",
    "evaluation/eval_util.py",
    "evaluation/average_precision_calculator.py",
    "evaluation/mean_average_precision_calculator.py",
}
PACKAGE_DIR = os.path.join(CODE_DIR, PACKAGE)


def _modules():
    """{dotted module name: file}: the binaries by their bare names, the library's
    modules under the package's name."""
    found = {name[:-3]: os.path.join(CODE_DIR, name) for name in os.listdir(CODE_DIR)}
    found = {name: path for name, path in found.items() if path.endswith(".py")}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py") and name != "__init__.py":
                path = os.path.join(folder, name)
                found[os.path.relpath(path, CODE_DIR)[:-3].replace(os.sep, ".")] = path
    return found


def _imports(module, known):
    """(project modules imported by `module`, whether it imports absl.flags)."""
    with open(known[module]) as handle:
        tree = ast.parse(handle.read())
    found, reads_flags = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            found |= {name for name in names if name in known}
            reads_flags |= "absl.flags" in names
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                found |= {dotted} if dotted in known else {node.module} & set(known)
            if node.module == "absl" and any(alias.name == "flags" for alias in node.names):
                reads_flags = True
            reads_flags |= node.module == "absl.flags"
    return found, reads_flags


def _package(module):
    """The topic package of a library module (None for a binary)."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE else None


def test_only_binaries_and_the_flag_module_import_flags():
    known = _modules()
    readers_of_flags = {module for module in known if _imports(module, known)[1]}
    assert readers_of_flags - BINARIES == {FLAG_MODULE}


def test_library_modules_import_no_binary_and_no_cycle():
    known = _modules()
    graph = {module: _imports(module, known)[0] for module in known}
    for module in set(known) - BINARIES:
        assert not graph[module] & BINARIES, (module, graph[module] & BINARIES)

    def reaches(start, target, seen):
        for imported in graph[start]:
            if imported == target:
                return True
            if imported not in seen:
                seen.add(imported)
                if reaches(imported, target, seen):
                    return True
        return False

    cycles = [module for module in known if reaches(module, module, set())]
    assert not cycles, cycles


def test_each_package_imports_only_the_layers_below_it():
    known = _modules()
    broken = []
    for module in set(known) - BINARIES - {FLAG_MODULE}:
        own = _package(module)
        for imported in _imports(module, known)[0]:
            other = _package(imported)
            if imported == FLAG_MODULE or other not in ALLOWED_IMPORTS[own] | {own}:
                broken.append(f"{module} imports {imported}")
    assert not broken, broken


def test_the_tree_shows_the_architecture():
    """Binaries on top, every library module in a topic package, the original's
    module names kept, and a test folder per package."""
    known = _modules()
    top = {module for module in known if "." not in module}
    assert top == BINARIES, top ^ BINARIES
    for binary in BINARIES:
        with open(known[binary]) as handle:
            tree = ast.parse(handle.read())
        assert not [node for node in tree.body if isinstance(node, ast.ClassDef)], binary
        functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
        assert "main" in functions, binary
    packages = {_package(module) for module in set(known) - BINARIES}
    assert packages == set(ALLOWED_IMPORTS), packages ^ set(ALLOWED_IMPORTS)
    assert all(module.count(".") == 2 for module in set(known) - BINARIES)
    for path in ORIGINAL_MODULES:
        assert os.path.isfile(os.path.join(PACKAGE_DIR, path)), path
    tests_dir = os.path.join(PROJECT_ROOT, "tests")
    folders = {name for name in os.listdir(tests_dir) if not name.startswith(("_", "."))}
    folders = {name for name in folders if os.path.isdir(os.path.join(tests_dir, name))}
    assert folders - {"data"} == set(ALLOWED_IMPORTS), folders


def test_a_model_built_without_settings_takes_its_declared_defaults():
    declared = dataclasses.asdict(frame_level_models.HierarchicalLstmModel.Params())
    frames = tf.compat.v1.placeholder(tf.float32, [None, 300, 1152])
    num_frames = tf.compat.v1.placeholder(tf.int32, [None])
    representation = frame_level_models.HierarchicalLstmModel().create_model(
        frames, 3862, num_frames
    )["representation"]
    units, layers = declared["lstm_cells"], declared["lstm_layers"]
    assert representation.shape[-1] == 2 * layers * units
    kernels = [
        v for v in tf.compat.v1.global_variables() if "RNN_L1" in v.name and "kernel" in v.name
    ]
    assert len(kernels) == layers and kernels[0].shape == (1152 + units, 4 * units)
    # A new run's config holds the declared hyperparameters, the classifier's included.
    config = model_config.ModelConfig(models=["teacher"])
    assert dataclasses.asdict(config.model_params) == declared
    assert "video_level_classifier_model" in declared


def test_skip_probe():
    """Skips when asked to: the probe of the next test."""
    if os.environ.get("YT8M_SKIP_PROBE"):
        pytest.skip("asked to skip")


@pytest.mark.parametrize("required", [False, True])
def test_a_skip_fails_under_run_tests_sh(required):
    env = dict(os.environ, YT8M_SKIP_PROBE="1")
    env.pop("YT8M_TESTS_REQUIRE_EVERY_TOOL", None)
    if required:  # as ./run_tests.sh sets it
        env["YT8M_TESTS_REQUIRE_EVERY_TOOL"] = "1"
    result = subprocess.run(
        [
            binary_launcher(),  # the fork server's, for pytest's imports of TensorFlow
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"{__file__}::test_skip_probe",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=300,
    )
    if required:
        assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout[-2000:]
        assert "skipped under ./run_tests.sh" in result.stdout
    else:
        assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout[-2000:]


def test_the_flag_module_loads_no_training_stack():
    """The shared flags take their defaults from config/settings.py, so a binary with a few
    flags (the sample generator) does not load training, evaluation or losses."""
    stack = [
        "fewer_frames.training.training_loop",
        "fewer_frames.evaluation.evaluation_loop",
        "fewer_frames.models.losses",
        "fewer_frames.run_dirs.checkpoints",
        "fewer_frames.models.model_graph",
        "fewer_frames.training.towers",
    ]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from fewer_frames.config import command_line; "
            f"print([m for m in {stack!r} if m in sys.modules])",
        ],
        cwd=CODE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "[]"


def _script_flags(script):
    """{flag: text} of the literal --flag=value arguments of a stage script, and the
    binary it runs."""
    with open(os.path.join(PROJECT_ROOT, script)) as handle:
        text = "".join(line for line in handle if not line.lstrip().startswith("#"))
    binary = re.search(r"\$CODE_DIR/(\w+)\.py", text).group(1)
    found = {}
    for name, value in re.findall(r'--(\w+)=("[^"]*"|[^\s"\\]+)(?=\s)', text):
        if "$" not in value:  # the run's directories and data, set per script
            found[name] = value.strip('"')
    return binary, found


@pytest.mark.parametrize(
    "script",
    ["run_train.sh", "run_validate.sh", "run_finetune.sh", "run_evaluate.sh"],
)
def test_the_stage_scripts_spell_out_the_code_defaults(script):
    """The scripts keep the seed's explicit flags for users to read; each must equal
    the binary's default, so the two cannot drift apart."""
    binary, written = _script_flags(script)
    assert written, script
    program = (
        "import json, sys\n"
        "from absl import flags\n"
        f"sys.argv = ['{binary}']\n"
        f"import {binary}\n"
        "flags.FLAGS(sys.argv)\n"
        f"names = {sorted(written)!r}\n"
        "print(json.dumps({n: flags.FLAGS[n].serialize() for n in names}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=CODE_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    defaults = json.loads(result.stdout.strip().splitlines()[-1])
    program_parse = {}
    for name, text in written.items():
        program_parse[name] = f"--{name}={text}"
    mismatched = {
        name: (text, defaults[name])
        for name, text in program_parse.items()
        if not _same_flag_value(text, defaults[name])
    }
    assert not mismatched, mismatched


def _same_flag_value(written, default):
    """Whether two --name=value texts mean the same value (1 and 1.0, True and true)."""
    first, second = written.split("=", 1)[1], default.split("=", 1)[1] if "=" in default else ""
    if default.startswith("--no"):
        second = "false"
    elif "=" not in default:
        second = "true"
    try:
        return float(first) == float(second)
    except ValueError:
        return first.lower().replace(" ", "") == second.lower().replace(" ", "")


def test_every_mutation_of_the_mutation_check_still_applies():
    """scripts/mutations.json names code by its text: after code moves, each `find`
    must still occur exactly once in its file, and each test it names must exist."""
    with open(os.path.join(PROJECT_ROOT, "scripts", "mutations.json")) as handle:
        mutations = json.load(handle)
    stale = []
    for mutation in mutations:
        with open(os.path.join(PROJECT_ROOT, mutation["file"])) as handle:
            if handle.read().count(mutation["find"]) != 1:
                stale.append(mutation["name"])
        for test in mutation["tests"]:
            path, _, name = test.partition("::")
            with open(os.path.join(PROJECT_ROOT, path)) as handle:
                if name and f"def {name.split('[')[0]}(" not in handle.read():
                    stale.append(f"{mutation['name']}: {test}")
    assert not stale, stale
