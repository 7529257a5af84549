# Shared helpers for the run_*.sh scripts. Source it; do not run it.
# shellcheck shell=bash

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$PROJECT_ROOT/.venv}"
YT8M_DIR="${YT8M_DIR:-$PROJECT_ROOT/yt8m}"
CODE_DIR="$PROJECT_ROOT/code_student_uniform"

die() {
  echo "ERROR: $*" >&2
  exit 1
}

# pip install "$@" into the venv, through uv where it can: pip fetches and unpacks
# one package at a time (about 100 s for the tests' requirements on a fresh
# machine), uv in parallel (about 28 s, uv's own install and the compiling of
# the modules included: with PYTHONDONTWRITEBYTECODE set, a venv without them
# compiles TensorFlow's Python at every start of an interpreter). uv reads
# no pip configuration: VENV_INSTALLER=pip keeps to pip (an index set only in
# pip.conf needs it), and pip takes over where uv cannot be installed or fails.
install_into_venv() {
  local pip=("$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check)
  if [[ "${VENV_INSTALLER:-uv}" == uv ]]; then
    if [[ -x "$VENV_DIR/bin/uv" ]] || "${pip[@]}" uv >/dev/null 2>&1; then
      "$VENV_DIR/bin/uv" pip install --quiet --compile-bytecode --python "$VENV_DIR/bin/python" "$@" \
        && return 0
      echo "uv could not install them; trying pip" >&2
    fi
  fi
  "${pip[@]}" "$@"
}

# Creates .venv if needed and installs the given requirement files into it.
# A stamp per file (of its contents) skips pip for the files already installed,
# so a script that needs fewer files than the tests leaves their stamps alone.
ensure_venv() {
  local python_bin="${PYTHON:-python3}"
  if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "Creating virtual environment in $VENV_DIR"
    "$python_bin" -m venv "$VENV_DIR" || die "could not create a virtual environment with $python_bin"
  fi
  local args=() changed=() req wanted stamp
  for req in "$@"; do
    wanted="$(sha256sum "$PROJECT_ROOT/$req" | cut -d' ' -f1)"
    stamp="$VENV_DIR/.installed-$(basename "$req")"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
      args+=(-r "$PROJECT_ROOT/$req")
      changed+=("$req")
    fi
  done
  if ((${#changed[@]})); then
    echo "Installing ${changed[*]} into $VENV_DIR"
    install_into_venv "${args[@]}" || die "the install of ${changed[*]} failed"
    for req in "${changed[@]}"; do
      sha256sum "$PROJECT_ROOT/$req" | cut -d' ' -f1 >"$VENV_DIR/.installed-$(basename "$req")"
    done
  fi
  PYTHON_BIN="$VENV_DIR/bin/python"
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
}

# Python to run the binaries with: the venv's if it exists, else $PYTHON or python3.
select_python() {
  if [[ -x "$VENV_DIR/bin/python" ]]; then
    PYTHON_BIN="$VENV_DIR/bin/python"
  else
    PYTHON_BIN="${PYTHON:-python3}"
  fi
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
}

# Writes the deterministic sample into $YT8M_DIR unless it is already there.
ensure_sample() {
  # Data behind a URI (gs://, ...) is never generated; the binaries look for it.
  [[ "$YT8M_DIR" == *://* ]] && return 0
  if compgen -G "$YT8M_DIR/train*.tfrecord" >/dev/null \
    && compgen -G "$YT8M_DIR/validate*.tfrecord" >/dev/null; then
    return 0
  fi
  echo "Generating the sample data set in $YT8M_DIR"
  "$PYTHON_BIN" "$CODE_DIR/make_sample_data.py" --output_dir="$YT8M_DIR" \
    || die "sample generation failed"
}

# Defaults shared by the stage scripts; each can be set in the environment.
TRAIN_DIR="${TRAIN_DIR:-./model_HLSTM_TeaStud_every10_train}"
FINETUNE_DIR="${FINETUNE_DIR:-./model_HLSTM_TeaStud_every10_finetune}"
TRAIN_DATA="${TRAIN_DATA:-$YT8M_DIR/train*.tfrecord}"
EVAL_DATA="${EVAL_DATA:-$YT8M_DIR/validate*.tfrecord}"
LOG_DIR="${LOG_DIR:-.}"

# Stops unless the glob matches at least one file.
require_data() {
  local pattern="$1" what="$2"
  # A URI (gs://, file://, ...): the binary looks through TensorFlow's filesystems.
  [[ "$pattern" == *://* ]] && return 0
  # shellcheck disable=SC2086
  if ! compgen -G "$pattern" >/dev/null; then
    die "no $what matches '$pattern'. Put YouTube-8M TFRecords into $YT8M_DIR (see docs/data.md), \
make the sample with 'python code_student_uniform/make_sample_data.py', or set the pattern \
in the environment."
  fi
}

# Stops unless the directory holds a checkpoint.
require_checkpoint() {
  local directory="$1" hint="$2"
  [[ "$directory" == *://* ]] && return 0
  if [[ ! -f "$directory/checkpoint" ]]; then
    die "no checkpoint in '$directory': $hint"
  fi
}

# TensorFlow's start-up lines written before its logging is set up (no flag or
# environment variable silences them); hidden on the console, kept in the logs.
TF_STARTUP_NOISE='^WARNING: All log messages before absl::InitializeLog|^[IW]0000 |cuInit|cuda_platform|cpu_feature_guard|^To enable the following instructions'

# Runs a command with its output shown and appended (in full) to a log file.
run_logged() {
  local log_file="$1"
  shift
  mkdir -p "$(dirname "$log_file")"
  echo "== $(date '+%F %T') $*" >>"$log_file"
  "$@" 2>&1 | tee -a "$log_file" | sed -u -E "/$TF_STARTUP_NOISE/d"
}
