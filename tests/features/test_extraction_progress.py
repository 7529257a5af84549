"""The extraction's progress line: at most one per interval, with videos done of
the total, video hours per hour of work and the time left, worked by hand."""

from fewer_frames.features import extraction


def test_progress_is_logged_once_per_interval_with_rate_and_time_left(monkeypatch):
    now = [1000.0]
    lines = []
    monkeypatch.setattr(extraction.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(
        extraction.logging, "info", lambda message, *args: lines.append(message % args)
    )
    progress = extraction.Progress(total=10, done=2, interval=30.0)  # 2 done by an earlier run
    now[0] += 10
    progress.add(1, 60.0)
    assert lines == []  # 10 s: within the interval
    now[0] += 26
    progress.add(1, 84.0)
    # 36 s: 2 videos here (144 s of video: 4.0 video hours per hour), 6 left at
    # 2 videos per 36 s: 108 s
    assert lines == ["Progress: 4 of 10 videos, 4.0 video hours per hour, 00:01:48 left"]
    now[0] += 1
    progress.add(1, 30.0)
    assert len(lines) == 1
    progress.add(0, 0.0, force=True)
    assert lines[-1].startswith("Progress: 5 of 10 videos")
