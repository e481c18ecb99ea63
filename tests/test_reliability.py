"""Records survive damage, sharing and hostile input: nothing lost, nothing counted twice.

Each test reproduces one way a results folder, a suite file or the command line went wrong
before, and checks the behaviour now wanted: a clear message and exit status 2 for bad input or
a refusing file system, damaged records kept aside and their cells run again, cells counted once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l2obench import cli
from l2obench.errors import L2OBenchError
from l2obench.executors import _group_rss_mb, _kill, died_record, run_isolated
from l2obench.record import Budget, Cell, Limits, Record, Status, content_checksum
from l2obench.report import build_report
from l2obench.store import ResultStore, StoreError, load_records, load_results
from l2obench.suite import SuiteError, expand, load_suite
from tests.conftest import REPO, run_main

SUITE = """
name = "{name}"
problem = "shortest-path"
sizes = {sizes}
seeds = [0]
data = {{ n_train = 20, n_val = 8, n_test = 8 }}
budget = {{ max_epochs = 1 }}

[[methods]]
name = "two-stage"
params = {{ lr = {lrs} }}
"""


def suite_file(tmp_path: Path, name: str = "small", sizes: str = "[3]",
               lrs: str = "[0.01, 0.02]") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SUITE.format(name=name, sizes=sizes, lrs=lrs))
    return path


def run_inline(suite: Path, out: Path, *extra: str) -> tuple[int, str]:
    """``l2obench run`` in this process, cells inline (fast: no child processes)."""
    return run_main(["run", "--suite", str(suite), "--out", str(out), "--device", "cpu",
                     "--executor", "inline", *extra])


def record_files(out: Path) -> list[Path]:
    """The record files of ``out`` (not a record being written: ``.tmp-*.json``)."""
    return sorted(p for p in (out / "records").glob("*.json") if not p.name.startswith("."))


# -- 1. damaged and foreign records ---------------------------------------------------------

#: Ways a record file is found damaged or foreign: its text -> what the file holds instead.
DAMAGE = {
    "truncated": lambda text: text[:300].encode(),
    "empty": lambda text: b"",
    "not utf-8": lambda text: b"\xff\xfe\x00garbage",
    "a list": lambda text: b"[1, 2, 3]",
    "only a cell id": lambda text: json.dumps({"cell_id": json.loads(text)["cell_id"]}).encode(),
    "another cell's": lambda text: json.dumps({**json.loads(text),
                                               "cell_id": "0123456789abcdef"}).encode(),
    # Edits that keep the record well-formed and its cell id: its content betrays them.
    "a metric edited": lambda text: json.dumps(
        {**json.loads(text), "metrics": {**json.loads(text)["metrics"], "norm_regret": 0.01}}
    ).encode(),
    "a NaN metric (no checksum)": lambda text: json.dumps(
        {**json.loads(text), "metrics": {**json.loads(text)["metrics"], "norm_regret": math.nan},
         "checksum": None}).encode(),
    "ok without its scores (no checksum)": lambda text: json.dumps(
        {**json.loads(text), "metrics": {}, "checksum": None}).encode(),
}


def damage(path: Path, how: str) -> None:
    path.write_bytes(DAMAGE[how](path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A suite file and a results folder holding its two recorded cells (run once)."""
    root = tmp_path_factory.mktemp("recorded")
    suite, out = suite_file(root), root / "out"
    assert run_inline(suite, out)[0] == 0
    return suite, out


def copy_of(recorded: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    suite, out = recorded
    shutil.copytree(out, tmp_path / "out")
    return suite, tmp_path / "out"


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_record_is_set_aside_and_its_cell_runs_again(
        recorded: tuple[Path, Path], tmp_path: Path, how: str,
        caplog: pytest.LogCaptureFixture) -> None:
    suite, out = copy_of(recorded, tmp_path)
    victim = record_files(out)[0]
    damage(victim, how)

    with caplog.at_level(logging.WARNING):
        code, text = run_inline(suite, out)
    assert code == 0, text
    assert "Traceback" not in text
    (warning,) = [r.getMessage() for r in caplog.records if "damaged record" in r.getMessage()]
    assert str(victim) in warning  # reported by path, once
    kept = list((out / "records" / "damaged").glob(f"{victim.stem}.*.json"))
    assert len(kept) == 1  # kept aside, not deleted
    assert Record.from_json(json.loads(victim.read_text())).status == Status.OK  # ran again
    assert len(load_records(out)) == 2


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_reading_skips_a_damaged_record_with_a_warning(
        recorded: tuple[Path, Path], tmp_path: Path, how: str,
        caplog: pytest.LogCaptureFixture) -> None:
    _, out = copy_of(recorded, tmp_path)
    victim = record_files(out)[0]
    damage(victim, how)
    with caplog.at_level(logging.WARNING):
        frame = load_results(out)
    assert len(frame) == 1 and str(victim) in caplog.text
    assert victim.exists()  # reading moves nothing
    with pytest.raises(L2OBenchError, match="damaged record"):
        load_results(out, strict=True)


def test_report_and_retry_go_on_past_a_damaged_record(recorded: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    suite, out = copy_of(recorded, tmp_path)
    damage(record_files(out)[0], "truncated")
    code, text = run_main(["report", "--results", str(out), "--out", str(tmp_path / "r")])
    assert code == 0 and "Traceback" not in text
    code, text = run_inline(suite, out, "--retry-failed")
    assert code == 0 and "Traceback" not in text
    assert len(load_records(out)) == 2


def test_rerun_of_a_damaged_record_is_a_clear_error(recorded: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    _, out = copy_of(recorded, tmp_path)
    victim = record_files(out)[0]
    damage(victim, "truncated")
    code, text = run_main(["rerun", victim.stem, "--results", str(out)])
    assert code == 2 and "no record" in text and "Traceback" not in text


# -- 2. a cell is counted once --------------------------------------------------------------


def test_records_in_subfolders_are_not_counted_again(recorded: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    _, out = copy_of(recorded, tmp_path)
    first = record_files(out)[0]
    copy = out / f"rerun-{first.stem}" / "records" / first.name  # what rerun --out D/x leaves
    copy.parent.mkdir(parents=True)
    copy.write_bytes(first.read_bytes())
    assert len(load_results(out)) == 2
    build = build_report(out, tmp_path / "report")
    assert "2/2 cells ok" in build.leaderboard.read_text()


# -- 3. suites sharing a folder --------------------------------------------------------------


@pytest.mark.slow
def test_a_suite_sharing_a_folder_reports_its_own_cells_and_the_missing_ones(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    small = suite_file(tmp_path, "small", sizes="[3]")
    other = suite_file(tmp_path, "other", sizes="[3, 4]", lrs="[0.01, 0.02, 0.03]")
    assert run_inline(small, out)[0] == 0  # 2 cells, suite "small"
    assert run_inline(other, out, "--sizes", "3")[0] == 0  # 3 cells, 2 of them small's
    files = build_report(out, tmp_path / "r", suite="other")
    page = files.leaderboard.read_text()
    assert "3/3 cells ok" in page and files.missing == 3
    assert "3 cells of the suite not recorded" in page
    with pytest.raises(L2OBenchError, match="3 cells without a record"):
        build_report(out, tmp_path / "r2", suite="other", allow_incomplete=False)
    assert not (tmp_path / "r2").exists()
    assert run_inline(other, out)[0] == 0
    files = build_report(out, tmp_path / "r3", suite="other", allow_incomplete=False)
    assert "6/6 cells ok" in files.leaderboard.read_text() and files.missing == 0


def test_publishing_takes_the_runs_records_and_supersedes_the_old_baselines(
        recorded: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import l2obench.report

    _, out = copy_of(recorded, tmp_path)
    published = tmp_path / "results" / "small"
    monkeypatch.setattr(l2obench.report, "publish_dir", lambda suite: published)
    old = dataclasses.replace(next(ResultStore(out).scan()), cell_id="0123456789abcdef")
    ResultStore(published).write(old)  # a record of the previous baseline
    code, text = run_main(["report", "--results", str(out), "--suite", "small", "--publish"])
    assert code == 0, text
    run = {p.name for p in record_files(out)}
    assert {p.name for p in record_files(published)} == run
    assert [p.name.split(".")[0] for p in (published / "records" / "superseded").iterdir()] \
        == [old.cell_id]
    noted = json.loads((published / "suites" / "small.json").read_text())
    assert set(noted["cells"]) == {name.removesuffix(".json") for name in run}
    assert "2/2 cells ok" in (published / "LEADERBOARD.md").read_text()
    assert f"--results {out}" in (published / "LEADERBOARD.md").read_text()
    # Publishing the same run again rewrites nothing.
    assert run_main(["report", "--results", str(out), "--suite", "small", "--publish"])[0] == 0
    assert len(list((published / "records" / "superseded").iterdir())) == 1


# -- 4. a folder named like a built-in suite ------------------------------------------------


def test_a_folder_named_like_a_builtin_suite_does_not_shadow_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shortest-path" / "records").mkdir(parents=True)
    assert load_suite("shortest-path").name == "shortest-path"
    code, text = run_main(["run", "--suite", "shortest-path", "--quick", "--dry-run",
                           "--device", "cpu", "--out", "shortest-path"])
    assert code == 0, text
    (tmp_path / "not-a-suite").mkdir()
    with pytest.raises(SuiteError, match="is a folder, not a suite file"):
        load_suite("not-a-suite")


# -- 5. file-system errors -------------------------------------------------------------------


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    suite, blocker = suite_file(tmp_path), tmp_path / "file"
    blocker.write_text("x")
    code, text = run_inline(suite, blocker)
    assert code == 2 and "in the way" in text and "Traceback" not in text
    code, text = run_main(["report", "--results", str(tmp_path), "--out", str(blocker)])
    assert code == 2 and "in the way" in text and "Traceback" not in text


def test_an_unwritable_folder_is_refused_before_any_work(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("l2obench.store.tempfile.mkstemp", read_only)
    code, text = run_inline(suite_file(tmp_path), tmp_path / "out")
    assert code == 2 and "Read-only file system" in text and "Traceback" not in text
    assert not record_files(tmp_path / "out")


def test_a_full_disk_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ResultStore(tmp_path)
    real_fsync = os.fsync

    def full(fd: int) -> None:
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("l2obench.store.os.fsync", full)
    with pytest.raises(StoreError, match="No space left on device"):
        store.write(Record(cell_id="0123456789abcdef", problem="p", method="m"))
    assert not list(tmp_path.rglob("*.json"))  # no half record, no temporary left behind


@pytest.mark.parametrize("prefix", ["*", "../../../other/records/ab", "a*b", ""])
def test_rerun_takes_cell_ids_not_patterns(tmp_path: Path, prefix: str) -> None:
    code, text = run_main(["rerun", prefix, "--results", str(tmp_path)])
    assert code == 2 and "Traceback" not in text


def test_rerun_checks_its_output_before_training(recorded: tuple[Path, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, out = copy_of(recorded, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr("l2obench.executors.run_isolated",
                        lambda *a, **k: pytest.fail("trained before checking --out"))
    code, text = run_main(["rerun", record_files(out)[0].stem, "--results", str(out),
                           "--out", str(blocker)])
    assert code == 2 and "in the way" in text


# -- 6. equivalent settings are one cell ----------------------------------------------------


@pytest.mark.parametrize("methods", [
    '[[methods]]\nname = "two-stage"\n[[methods]]\nname = "two-stage"\nparams = { lr = 0.01 }',
    '[[methods]]\nname = "two-stage"\nparams = { lr = [0.01, "1e-2"] }',
])
def test_equivalent_settings_in_one_suite_are_an_input_error(tmp_path: Path,
                                                             methods: str) -> None:
    path = tmp_path / "dup.toml"
    path.write_text('name = "dup"\nproblem = "shortest-path"\nsizes = [3]\n'
                    'budget = { max_epochs = 1 }\n' + methods)
    code, text = run_main(["run", "--suite", str(path), "--dry-run", "--device", "cpu"])
    assert code == 2 and "same configuration" in text, text


# -- 8. statuses and limits ------------------------------------------------------------------


def cell(**budget: Any) -> Cell:
    from l2obench.methods.base import method_registry
    from l2obench.problems.shortest_path import ShortestPath

    params = ShortestPath.validate({"k": 3, "n_train": 20, "n_val": 8, "n_test": 8})
    return Cell(suite="t", problem="shortest-path", size_param="k", problem_params=params,
                method="two-stage", method_params=method_registry.get("two-stage").validate({}),
                method_label="two-stage", seed=0, device="cpu",
                budget=Budget(**budget) if budget else Budget(max_epochs=1))


def test_an_outside_sigkill_is_not_called_out_of_memory() -> None:
    record = died_record(cell(), -signal.SIGKILL, oom_killed=False)
    assert record.status == Status.FAILED
    assert record.error is not None and "from outside" in record.error
    assert died_record(cell(), -signal.SIGKILL, oom_killed=True).status == Status.OOM
    assert died_record(cell(), -signal.SIGKILL, oom_killed=None).status == Status.FAILED


def test_no_budget_in_seconds_still_gets_a_wall_limit(tmp_path: Path) -> None:
    from l2obench.suite_run import DEFAULT_WALL_SECONDS, default_wall_seconds

    assert default_wall_seconds(Budget(max_epochs=5)) == DEFAULT_WALL_SECONDS < float("inf")
    code, text = run_inline(suite_file(tmp_path), tmp_path / "out", "--dry-run")
    assert code == 0 and "wall 12 h" in text


@pytest.mark.slow
def test_an_outside_sigkill_of_a_running_cell_is_recorded_as_such() -> None:
    from l2obench import executors

    def killer() -> None:
        deadline = time.monotonic() + 60
        while not executors._LIVE and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        for child in list(executors._LIVE):
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)

    import threading

    thread = threading.Thread(target=killer)
    thread.start()
    record = run_isolated(cell(max_epochs=100_000), Limits(wall_seconds=120))
    thread.join()
    assert record.status == Status.FAILED, record.error
    assert record.error is not None and "SIGKILL from outside" in record.error


# -- 9. a killed cell takes what it started with it -----------------------------------------


def _start_helper_and_wait(pid_file: str) -> None:
    """A cell's stand-in: leads its group, starts a long-running helper, hogs memory."""
    os.setpgid(0, 0)
    helper = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(50 << 20); "
                               "time.sleep(600)"])
    Path(pid_file).write_text(str(helper.pid))
    time.sleep(600)


@pytest.mark.slow
def test_killing_a_cell_kills_its_process_group_and_counts_its_memory(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    child = mp.get_context("fork").Process(target=_start_helper_and_wait, args=(str(pid_file),))
    child.start()
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    helper = int(pid_file.read_text())
    rss = _group_rss_mb(child.pid)
    assert rss is not None and rss > 50  # the helper's 50 MB count with the cell
    _kill(child)
    time.sleep(0.2)
    stat = Path(f"/proc/{helper}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1][0] == "Z"  # gone (or a zombie)


# -- 10, 11. permissions and links ----------------------------------------------------------


def test_records_follow_the_umask_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = ResultStore(tmp_path).write(Record(cell_id="0123456789abcdef", problem="p",
                                                  method="m"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_planted_lock_symlink_is_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "out")
    locks = tmp_path / "out" / "records" / ".locks"
    locks.mkdir(parents=True)
    target = tmp_path / "elsewhere"
    (locks / "0123456789abcdef.lock").symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link"):
        store.try_lock("0123456789abcdef")
    assert not target.exists()


# -- 12. smaller gaps -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fragments"), [
    ('sizes = [3]\n[quick]\nsizes = [-1]', ["quick.sizes", "below its minimum"]),
    ('sizes = [1]', ["key 'sizes'", "below its minimum"]),
    ('sizes = [3]\nseeds = [-2]', ["key 'seeds'", "below its minimum"]),
    ('sizes = [3]\ndescription = 5', ["key 'description' must be a string"]),
])
def test_suite_values_are_checked_with_file_and_key(tmp_path: Path, text: str,
                                                    fragments: list[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'name = "s"\nproblem = "shortest-path"\nbudget = {{ max_epochs = 1 }}\n'
                    f'{text}\n[[methods]]\nname = "two-stage"\n'.replace(
                        '\n[quick]', '\n[[methods]]\nname = "spo+"\n[quick]'))
    code, out = run_main(["run", "--suite", str(path), "--dry-run", "--device", "cpu"])
    assert code == 2, out
    assert str(path) in out.replace("\n", "")
    for fragment in fragments:
        assert fragment in out, out


@pytest.mark.parametrize("args", [
    ["--out", ""],
    ["--jobs", "2", "--executor", "inline"],
    ["--threads", "2", "--executor", "inline"],
    ["--address", "ray://x:1"],
])
def test_options_that_would_be_ignored_are_refused(tmp_path: Path, args: list[str]) -> None:
    code, text = run_main(["run", "--suite", str(suite_file(tmp_path)), "--device", "cpu",
                           *args])
    assert code == 2 and "Traceback" not in text, text


@pytest.mark.parametrize("change", [{"device": "tpu"}, {"budget_max_epochs": -5},
                                    {"params": '{"lr": -1}'}, {"problem": "nope"}])
def test_rerun_validates_the_record(recorded: tuple[Path, Path], tmp_path: Path,
                                    change: dict[str, object]) -> None:
    _, out = copy_of(recorded, tmp_path)
    path = record_files(out)[0]
    # Without its checksum (as a record written before it), so the values themselves are checked
    path.write_text(json.dumps({**json.loads(path.read_text()), **change, "checksum": None}))
    code, text = run_main(["rerun", path.stem, "--results", str(out)])
    assert code == 2 and "Traceback" not in text, text
    assert text.count("error") == 1, text


@pytest.mark.slow
def test_mathtext_in_a_method_label_is_plain_text_in_the_figures(recorded: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    _, out = copy_of(recorded, tmp_path)
    for path in record_files(out):
        data = json.loads(path.read_text())
        data["method_label"] = data["method_label"] + r"[$\frac$]"
        data["checksum"] = content_checksum(data)
        path.write_text(json.dumps(data))
    files = build_report(out, tmp_path / "r")
    assert files.figures


@pytest.mark.slow
def test_a_large_grid_expands_to_every_cell(tmp_path: Path) -> None:
    grid = ", ".join(str(i) for i in range(1, 201))
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\nproblem = "shortest-path"\nsizes = [3]\n'
                    'budget = { max_epochs = 1 }\n[[methods]]\nname = "two-stage"\n'
                    f'params = {{ hidden = [{grid}], batch_size = [{grid}] }}\n')
    cells = expand(load_suite(str(path)), device="cpu")
    assert len(cells) == len({c.cell_id for c in cells}) == 40_000


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_from_a_terminal(args: list[str], sigint: Callable[[], None]) -> subprocess.Popen[str]:
    """``python -m l2obench ARGS`` in a session of its own, with SIGINT set by ``sigint`` (a
    terminal's shell leaves it at its default; a script's ``&`` and nohup ignore it). Returns
    once the interpreter has started (a Ctrl-C within Python's own start-up is Python's to
    report), its first stderr line read."""
    start = ("import sys, runpy; print('started', file=sys.stderr, flush=True); "
             "runpy.run_module('l2obench', run_name='__main__', alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-c", start, *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=sigint)
    assert proc.stderr is not None and proc.stderr.readline() == "started\n"
    return proc


@pytest.mark.slow
def test_ctrl_c_stops_the_running_cells_and_exits_130(tmp_path: Path) -> None:
    suite = tmp_path / "slow.toml"
    suite.write_text(SUITE.format(name="slow", sizes="[3]", lrs="[0.01, 0.02, 0.03]")
                     .replace("max_epochs = 1", "max_epochs = 150"))
    out = tmp_path / "out"
    proc = _start_from_a_terminal(["run", "--suite", str(suite), "--out", str(out),
                                   "--device", "cpu"], _sigint_default)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(record_files(out)) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "interrupted" in stdout + stderr
    done = record_files(out)
    assert 1 <= len(done) < 3
    assert all(Record.from_json(json.loads(p.read_text())).status == Status.OK for p in done)
    code, text = run_main(["run", "--suite", str(suite), "--out", str(out), "--device", "cpu",
                           "--executor", "inline"])
    assert code == 0, text
    assert len(record_files(out)) == 3


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.1, 0.3, 1.0, 2.0, 3.0, 4.5, 6.0])
def test_ctrl_c_at_any_moment_ends_with_one_line_and_130(tmp_path: Path, delay: float) -> None:
    """A terminal's Ctrl-C reaches the whole process group: the command, and the fork server
    that imports torch and the methods in its first seconds."""
    suite = tmp_path / "slow.toml"
    suite.write_text(SUITE.format(name="slow", sizes="[3]", lrs="[0.01, 0.02, 0.03]")
                     .replace("max_epochs = 1", "max_epochs = 150"))
    proc = _start_from_a_terminal(
        ["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu"],
        _sigint_default)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr and "Exception" not in stdout + stderr
    assert len(stderr.splitlines()) <= 1, stderr
    assert "interrupted" in stdout + stderr


@pytest.mark.parametrize("where", ["enter", "exit"])
def test_ctrl_c_as_the_interrupt_handling_begins_or_ends(where: str,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    """A Ctrl-C in the instant before the command's handler is set, or after it is reset (a
    run under load once met it 0.3 s after start), ends the command with one line and 130."""
    real = cli._clean_interrupts

    @contextlib.contextmanager
    def interrupted_at_the_edge() -> Any:
        if where == "enter":
            raise KeyboardInterrupt
        with real() as received:
            yield received
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_clean_interrupts", interrupted_at_the_edge)
    assert cli.main(["list"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "l2obench: interrupted"


def _tagged(tag: str) -> list[int]:
    """The processes whose environment holds ``L2OBENCH_TEST_TAG=tag`` (a command's and all it
    started: the fork server, the cells)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"L2OBENCH_TEST_TAG={tag}".encode() in \
                    (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_sigterm_stops_a_run_like_ctrl_c_and_leaves_no_process(tmp_path: Path) -> None:
    """`kill PID` (what a sweep script sends) stops the running cells too: none of them, nor the
    fork server, runs on as an orphan; the completed cells are kept; the exit code is 143."""
    suite = tmp_path / "slow.toml"
    suite.write_text(SUITE.format(name="slow", sizes="[3]", lrs="[0.01, 0.02, 0.03]")
                     .replace("max_epochs = 1", "max_epochs = 3000"))
    out, tag = tmp_path / "out", tmp_path.name
    proc = subprocess.Popen([sys.executable, "-m", "l2obench", "run", "--suite", str(suite),
                             "--out", str(out), "--device", "cpu"], cwd=REPO,
                            env={**os.environ, "L2OBENCH_TEST_TAG": tag},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_tagged(tag)) < 3:  # the command, server, a cell
        time.sleep(0.1)
    time.sleep(0.5)
    proc.terminate()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stdout + stderr
    assert "Traceback" not in stdout + stderr and "interrupted" in stdout + stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _tagged(tag):
        time.sleep(0.1)
    assert not _tagged(tag)


@pytest.mark.slow
def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it(tmp_path: Path) -> None:
    """The Unix convention (nohup, a non-interactive shell's ``&``): the run goes on to the end."""
    suite = tmp_path / "slow.toml"
    suite.write_text(SUITE.format(name="slow", sizes="[3]", lrs="[0.01, 0.02]")
                     .replace("max_epochs = 1", "max_epochs = 100"))
    proc = _start_from_a_terminal(
        ["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu"],
        _sigint_ignored)
    for delay in (0.2, 1.0, 2.0):
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    assert len(record_files(tmp_path / "out")) == 2


def test_a_record_whose_fields_were_edited_cannot_rerun_as_another_cell(
        recorded: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = copy_of(recorded, tmp_path)
    path = record_files(out)[0]
    record = Record.from_json(json.loads(path.read_text()))
    edited = dataclasses.replace(record, seed=record.seed + 1)
    path.write_text(json.dumps(edited.to_json()))
    code, text = run_main(["rerun", path.stem, "--results", str(out)])
    assert code == 2 and "no record" in text  # its checksum betrays the edit: set aside
    (path,) = record_files(out)
    record = Record.from_json(json.loads(path.read_text()))
    edited = dataclasses.replace(record, seed=record.seed + 1, checksum=None)  # as if old
    path.write_text(json.dumps(edited.to_json()))
    code, text = run_main(["rerun", path.stem, "--results", str(out)])
    assert code == 2 and "describes another cell" in text


@pytest.mark.slow
def test_fault_injection_keeps_every_promise() -> None:
    from tests.fault_injection import main as inject

    assert inject(["--kills", "3", "--seed", "1"]) == 0


def test_the_cells_run_the_l2obench_the_command_runs(tmp_path: Path) -> None:
    """A run started in a folder that holds another ``l2obench`` package (another checkout)
    runs the installed one in its cells too, as the command does: the fork server does not
    import from the working directory."""
    shadow = tmp_path / "l2obench"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(
        "open('shadow-imported', 'w').close()\nraise ImportError('the shadow checkout')\n")
    script = (
        "import os, multiprocessing as mp\n"
        "from l2obench import executors\n"
        "if __name__ == '__main__':\n"
        "    ctx = mp.get_context('forkserver')\n"
        "    ctx.set_forkserver_preload(['l2obench'])\n"
        "    executors._start_fork_server()\n"
        "    child = ctx.Process(target=os.getpid)\n"
        "    child.start()\n"
        "    child.join()\n"
        "    print(child.exitcode)\n")
    # A script in a folder of its own, as the console script is: the command's path starts
    # with that folder, not with the working directory.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "start.py").write_text(script)
    done = subprocess.run([sys.executable, str(tmp_path / "bin" / "start.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "0", done.stdout + done.stderr
    assert not (tmp_path / "shadow-imported").exists()


def test_the_fork_server_runs_out_of_the_terminals_reach() -> None:
    """A terminal's Ctrl-C reaches its foreground process group: the server, in a session of its
    own, never sees one, and this process's SIGINT handler is never set aside (a Ctrl-C while
    the server starts is not lost)."""
    script = (
        "import os, signal, time\n"
        "import multiprocessing as mp\n"
        "from multiprocessing import forkserver\n"
        "from l2obench import executors\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "mp.get_context('forkserver').set_forkserver_preload([])\n"
        "executors._start_fork_server()\n"
        "server = forkserver._forkserver._forkserver_pid\n"
        "print(os.getsid(server) != os.getsid(0), os.getpgid(server) != os.getpgid(0))\n"
        "def start():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.05)\n"
        "forkserver.ensure_running = start\n"
        "try:\n"
        "    executors._start_fork_server()\n"
        "    time.sleep(0.05)\n"
        "    print('lost')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.split("\n")[:2] == ["True True", "interrupted"], done.stdout + done.stderr
