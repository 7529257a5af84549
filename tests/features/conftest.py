"""Stand-in model files (the release's names, formats and shapes, small networks)
and generated videos, made once per session for the feature tests."""

import pytest

from fewer_frames.benchmarks import generated_videos, stand_in_models
from testlib import made_once, shared_root

# name: (seconds, write_video options)
VIDEOS = {
    "tone.mp4": (4.5, {}),
    "silent.mp4": (3.0, {"audio": False, "width": 80, "height": 60}),
}


@pytest.fixture(scope="session")
def feature_models(tmp_path_factory):
    model_dir = shared_root(tmp_path_factory) / "feature_models"
    with made_once(model_dir) as make:
        if make:
            stand_in_models.write_rgb_files(str(model_dir))
            stand_in_models.write_audio_files(str(model_dir))
    return str(model_dir)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """{name: path} of the VIDEOS."""
    folder = shared_root(tmp_path_factory) / "feature_videos"
    with made_once(folder) as make:
        if make:
            folder.mkdir(parents=True)
            for name, (seconds, options) in VIDEOS.items():
                generated_videos.write_video(str(folder / name), seconds, **options)
    return {name: str(folder / name) for name in VIDEOS}
