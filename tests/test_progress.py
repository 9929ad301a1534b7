"""Progress lines with an ETA (issue 11, item 8)."""

from biolatent.progress import StepProgress, duration_text, eta_text


def test_eta_text():
    assert eta_text(0.0, 0, 5) == ""
    assert eta_text(10.0, 2, 5) == "; 10s elapsed, about 15s left"
    assert eta_text(90.0, 1, 3) == "; 1m30s elapsed, about 3m00s left"
    assert duration_text(125.4) == "2m05s"


def test_step_progress_throttles_and_always_reports_the_last_step():
    now = [0.0]
    lines: list[str] = []
    progress = StepProgress(4, lines.append, "embed", every_s=5.0, clock=lambda: now[0])
    for t in (2.0, 6.0, 7.0, 8.0):  # step 1 too soon, step 2 after 6 s, step 3 too soon, step 4 is the last
        now[0] = t
        progress.step(" batch")
    assert lines == ["embed [2/4] batch; 6s elapsed, about 6s left", "embed [4/4] batch; 8s elapsed, about 0s left"]


def test_step_progress_without_say_is_silent():
    progress = StepProgress(2, None, "x")
    progress.step()
    progress.step()
    assert progress.done == 2
