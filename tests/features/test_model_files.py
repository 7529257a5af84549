"""The model files: found under the release's names, downloaded from a mirror (a
file:// URL stands for the network) and checked, named when missing or wrong."""

import dataclasses
import hashlib
import io
import pathlib
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.features import model_files, vggish
from fewer_frames.system.errors import UserError
from testlib import run_binary


def _extract(tmp_path, model_dir, *flags):
    (tmp_path / "videos.csv").write_text("unused.mp4,1\n")
    return run_binary(
        "extract_features.py",
        f"--input_videos_csv={tmp_path / 'videos.csv'}",
        f"--output_tfrecords_file={tmp_path / 'out.tfrecord'}",
        f"--model_dir={model_dir}",
        *flags,
        check=False,
    )


def _mirror(folder, feature_models):
    """The release's downloads made of the stand-in files, under their names."""
    folder.mkdir()
    for download in model_files.DOWNLOADS:
        if not download.members:
            shutil.copy(f"{feature_models}/{download.name}", folder / download.name)
            continue
        with tarfile.open(folder / download.name, "w:gz") as archive:
            for name in download.members:
                archive.add(f"{feature_models}/{name}", arcname=f"release/{name}")
    return folder


def test_offline_the_error_names_each_missing_file_and_its_source(tmp_path):
    result = _extract(tmp_path, tmp_path / "models", "--model_download_mirror=http://127.0.0.1:9")
    assert result.returncode == 1
    for name, source in (
        ("classify_image_graph_def.pb", "inception-2015-12-05.tgz"),
        ("mean.npy", "yt8m_pca.tgz"),
        ("eigenvecs.npy", "yt8m_pca.tgz"),
        ("vggish_model.ckpt", "vggish_model.ckpt"),
        ("vggish_pca_params.npz", "vggish_pca_params.npz"),
    ):
        assert f"{name}" in result.stderr and f"http://127.0.0.1:9/{source}" in result.stderr
    assert "download failed" in result.stderr
    result = _extract(tmp_path, tmp_path / "models", "--nodownload_models")
    assert result.returncode == 1
    assert (
        "classify_image_graph_def.pb (inside inception-2015-12-05.tgz, unpacked) from "
        "https://storage.googleapis.com/download.tensorflow.org/models/image/imagenet/"
        "inception-2015-12-05.tgz" in result.stderr
    )
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


def test_downloads_are_checked_and_unpacked(tmp_path, feature_models):
    """Through the binary: a download whose size or sha256 is not the release's is
    refused and not kept; one with no published sum (yt8m_pca.tgz) is unpacked.
    Then, with the stand-ins' sums in the manifest, every file arrives."""
    mirror = _mirror(tmp_path / "mirror", feature_models)
    model_dir = tmp_path / "models"
    result = _extract(tmp_path, model_dir, f"--model_download_mirror=file://{mirror}")
    assert result.returncode == 1
    assert "bytes downloaded, the release has 88931400" in result.stderr
    release_sum = model_files.DOWNLOADS[2].sha256
    assert f"the release's is {release_sum}" in result.stderr
    assert sorted(path.name for path in model_dir.iterdir()) == [
        "eigenvals.npy",
        "eigenvecs.npy",
        "mean.npy",
    ]
    np.testing.assert_array_equal(
        np.load(model_dir / "eigenvecs.npy"), np.load(f"{feature_models}/eigenvecs.npy")
    )

    def stand_in_sums(download):
        content = (mirror / download.name).read_bytes()
        return dataclasses.replace(
            download, size=len(content), sha256=hashlib.sha256(content).hexdigest()
        )

    original = model_files.DOWNLOADS
    model_files.DOWNLOADS = tuple(stand_in_sums(download) for download in original)
    try:
        names = model_files.RGB_FILES + model_files.AUDIO_FILES
        model_files.ensure_model_files(str(model_dir), names, mirror=f"file://{mirror}")
    finally:
        model_files.DOWNLOADS = original
    for name in names:
        assert (model_dir / name).read_bytes() == pathlib.Path(feature_models, name).read_bytes()


def _broken_copy(tmp_path, feature_models, name, content):
    model_dir = tmp_path / "models"
    shutil.copytree(feature_models, model_dir)
    with open(model_dir / name, "wb") as stream:
        stream.write(content)
    return model_dir


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _v1_checkpoint(path, shapes):
    """A one-file (V1) checkpoint of zero variables of `shapes` {name: shape}."""
    with tf.Graph().as_default():
        for name, shape in shapes.items():
            tf.compat.v1.get_variable(name, shape)
        saver = tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(path), write_meta_graph=False, write_state=False)


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "eigenvecs.npy",
            _npy(np.zeros([1024, 1000])),
            "shape [1024, 1000], expected K>=1024x2048",
        ),
        ("mean.npy", b"not numpy", "mean.npy: not a numpy array file"),
        ("classify_image_graph_def.pb", b"\x08\x01garbage", "not a TensorFlow GraphDef"),
        (
            "vggish_model.ckpt",
            b"not a checkpoint",
            "vggish_model.ckpt: not a TensorFlow checkpoint",
        ),
        ("vggish_pca_params.npz", b"PK", "vggish_pca_params.npz: not a numpy .npz file"),
    ],
)
def test_a_wrong_model_file_is_named(tmp_path, feature_models, name, content, message):
    result = _extract(tmp_path, _broken_copy(tmp_path, feature_models, name, content))
    assert result.returncode == 1
    assert message in result.stderr, result.stderr[-2000:]


def test_other_graphs_and_checkpoints_are_named(tmp_path, feature_models):
    """A GraphDef without the release's input chain, and a VGGish checkpoint whose
    layers do not chain, are named with what is wrong."""
    with tf.Graph().as_default() as graph:
        tf.constant(1.0, name="pool_3")
    model_dir = _broken_copy(
        tmp_path,
        feature_models,
        "classify_image_graph_def.pb",
        graph.as_graph_def().SerializeToString(),
    )
    result = _extract(tmp_path, model_dir)
    assert (
        "not the 2015 Inception-v3 graph: no node Cast, ExpandDims, ResizeBilinear" in result.stderr
    )
    conv1 = {"vggish/conv1/weights": [3, 3, 1, 4], "vggish/conv1/biases": [4]}
    _v1_checkpoint(
        model_dir / "vggish_model.ckpt",
        {**conv1, "vggish/conv2/weights": [3, 3, 5, 4], "vggish/conv2/biases": [4]},
    )
    (model_dir / "classify_image_graph_def.pb").write_bytes(
        pathlib.Path(feature_models, "classify_image_graph_def.pb").read_bytes()
    )
    result = _extract(tmp_path, model_dir)
    assert "vggish/conv2 has weights [3, 3, 5, 4] and biases [4]; VGGish's take [3, 3, 4]" in (
        result.stderr
    ), result.stderr[-2000:]
    _v1_checkpoint(tmp_path / "partial.ckpt", conv1)
    with pytest.raises(
        UserError, match="no variable vggish/conv2/weights: not a VGGish checkpoint"
    ):
        vggish.layer_shapes(str(tmp_path / "partial.ckpt"))
