"""The files of the networks and PCAs that made the released features: their names
in --model_dir, the public downloads they come from, and the download itself.

A user who fetched them by hand puts them in --model_dir under these names (the
two archives unpacked); files already there are used as they are. Missing ones
are downloaded on first use, checked (size and sha256 where this project knows
them), and unpacked; without network the error names each file and its source.
"""

import dataclasses
import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request

import tensorflow as tf
from absl import logging

from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError

INCEPTION_GRAPH = "classify_image_graph_def.pb"
RGB_PCA_MEAN = "mean.npy"
RGB_PCA_EIGENVALUES = "eigenvals.npy"
RGB_PCA_EIGENVECTORS = "eigenvecs.npy"
VGGISH_CHECKPOINT = "vggish_model.ckpt"
VGGISH_PCA = "vggish_pca_params.npz"

RGB_FILES = (INCEPTION_GRAPH, RGB_PCA_MEAN, RGB_PCA_EIGENVALUES, RGB_PCA_EIGENVECTORS)
AUDIO_FILES = (VGGISH_CHECKPOINT, VGGISH_PCA)


@dataclasses.dataclass(frozen=True)
class Download:
    """A public release file. `members`: the files taken from it when it is an
    archive (empty: the download is the file itself). `size` and `sha256`: the
    release's, where known (None: not checked, the sha256 is logged)."""

    url: str
    members: tuple = ()
    size: int | None = None
    sha256: str | None = None

    @property
    def name(self):
        return self.url.rsplit("/", 1)[-1]

    @property
    def provides(self):
        return self.members or (self.name,)


DOWNLOADS = (
    Download(
        "https://storage.googleapis.com/download.tensorflow.org/models/image/imagenet/"
        "inception-2015-12-05.tgz",
        members=(INCEPTION_GRAPH,),
        size=88_931_400,
    ),
    Download(
        "http://data.yt8m.org/yt8m_pca.tgz",
        members=(RGB_PCA_MEAN, RGB_PCA_EIGENVALUES, RGB_PCA_EIGENVECTORS),
    ),
    Download(
        "https://storage.googleapis.com/audioset/vggish_model.ckpt",
        sha256="0962b1914e3e053922d957c45bc84a78c985765641dc6bceeeb3a7d8dfecfdf6",
    ),
    Download(
        "https://storage.googleapis.com/audioset/vggish_pca_params.npz",
        sha256="4d878af3e306defbfb37095365aa7e5a6cecb86bad13e859e626151c4e6a8b9d",
    ),
)
_CHUNK = 1 << 20


def model_path(model_dir, name):
    return f"{model_dir.rstrip('/')}/{name}"


def _source(name):
    return next(download for download in DOWNLOADS if name in download.provides)


def _mirrored(download, mirror):
    """The download's URL, or the same file name under `mirror` (a base URL)."""
    return f"{mirror.rstrip('/')}/{download.name}" if mirror else download.url


def ensure_model_files(model_dir, names, allow_download=True, mirror=""):
    """Makes sure each of `names` is in `model_dir`, downloading the missing ones;
    raises UserError naming every file still missing and where it comes from."""
    missing = [name for name in names if not tf.io.gfile.exists(model_path(model_dir, name))]
    if not missing:
        return
    downloads = [download for download in DOWNLOADS if set(download.provides) & set(missing)]
    problems = []
    if allow_download:
        for download in downloads:
            try:
                _fetch(download, model_dir, mirror)
            except (OSError, urllib.error.URLError, tarfile.TarError, UserError) as error:
                problems.append(f"{download.name}: {error}")
    still_missing = [
        name for name in missing if not tf.io.gfile.exists(model_path(model_dir, name))
    ]
    if still_missing:
        sources = []
        for name in still_missing:
            download = _source(name)
            inside = f" (inside {download.name}, unpacked)" if download.members else ""
            sources.append(f"{name}{inside} from {_mirrored(download, mirror)}")
        why = ("; download failed: " + "; ".join(problems)) if problems else ""
        raise UserError(
            f"missing model files in {model_dir}: " + "; ".join(sources) + why + ". "
            "Put them there under these names, or run where the URLs can be reached "
            "(docs/video_features.md)."
        )


def _fetch(download, model_dir, mirror):
    """Downloads one release file into a local temporary folder with progress,
    checks it, and moves it (or its archive members) into `model_dir`."""
    url = _mirrored(download, mirror)
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, download.name)
        sha256 = _download(url, local)
        size = os.path.getsize(local)
        if download.size is not None and size != download.size:
            raise UserError(f"{url}: {size} bytes downloaded, the release has {download.size}")
        if download.sha256 is not None and sha256 != download.sha256:
            raise UserError(f"{url}: sha256 {sha256}, the release's is {download.sha256}")
        if download.sha256 is None:
            logging.info("%s: %d bytes, sha256 %s (no published sum to compare)", url, size, sha256)
        tf.io.gfile.makedirs(model_dir)
        if not download.members:
            _place(local, model_path(model_dir, download.name))
            return
        with tarfile.open(local) as archive:
            found = {os.path.basename(member.name): member for member in archive.getmembers()}
            for name in download.members:
                if name not in found or not found[name].isfile():
                    raise UserError(f"{url}: the archive holds no file {name}")
                unpacked = os.path.join(folder, name)
                with archive.extractfile(found[name]) as source, open(unpacked, "wb") as target:
                    while chunk := source.read(_CHUNK):
                        target.write(chunk)
                _place(unpacked, model_path(model_dir, name))


def _download(url, local):
    """Streams `url` to the file `local`, logging progress; returns its sha256."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, open(local, "wb") as target:
        total = int(response.headers.get("Content-Length") or 0)
        done, reported = 0, -1
        while chunk := response.read(_CHUNK):
            target.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            tenth = done * 10 // total if total else -1
            if tenth > reported:
                reported = tenth
                logging.info("Downloading %s: %d%% of %.1f MB", url, tenth * 10, total / 1e6)
    return digest.hexdigest()


def _place(local, path):
    """Copies a finished local file to `path` whole (a temporary name, then a rename)."""
    with filesystem.atomic_output(path) as temporary:
        tf.io.gfile.copy(local, temporary, overwrite=True)
