"""Problems found at start, not at every capture, and the exit codes, driving the real commands
against the real Go sample app, a moto S3 server and the real control plane: a wrong port, a
folder that cannot take a file, a bucket that does not exist, a Lease namespace that does not
exist are each said in one line naming the flag or field; S3 that does not answer is a warning
where a spool keeps the profiles (local mode spools like the operator); a pod whose capture failed
is retried with backoff, not at every check; `kprof local` exits 1 when a profile failed."""

from __future__ import annotations

import json
import signal
import sys
import time

import pytest

from kprof_lib.planning import cadence
from tests.support.kprofproc import REPO_ROOT, KprofProcesses
from tests.support.net import free_port
from tests.test_capture_cli import kprof as capture
from tests.test_sidecar import podinfo_dir, sidecar_env


@pytest.fixture
def kprof():
    processes = KprofProcesses()
    yield processes
    processes.close()


def a_file_in_the_way(tmp_path):
    """A path under a regular file: no folder can be made there, not even by root."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    return blocker / "profiles"


def only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- kprof capture -------------------------------------------------------------------------------


def test_capture_refuses_a_folder_it_cannot_write(go_app, tmp_path):
    out = a_file_in_the_way(tmp_path)
    result = capture("--url", go_app.url, "--types", "heap", "--out", str(out))
    assert result.returncode == 1
    assert only_line(result.stderr) == f"kprof capture: --out {out}: cannot write there: Not a directory"


def test_capture_refuses_a_bucket_that_does_not_exist(go_app, s3):
    result = capture("--url", go_app.url, "--types", "heap", "--to", "s3://no-such-bucket/x",
                     "--s3-endpoint", s3.endpoint_url)
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert line.startswith("kprof capture: --to: s3://no-such-bucket") and "the bucket does not exist" in line, line
    assert result.stdout == ""


# -- kprof local ---------------------------------------------------------------------------------


def test_local_refuses_a_target_that_does_not_answer(tmp_path, kprof):
    port = free_port()
    run = kprof("local", "--target", f"http://127.0.0.1:{port}", "--on-demand-interval", "30",
                "--out", str(tmp_path / "profiles"))
    assert run.wait(30) == 1, run.output()
    assert run.stderr == [
        f"kprof local: --target http://127.0.0.1:{port}/debug/pprof/: connection refused (nothing listens on that port?)"
    ]
    assert run.stdout == []


def test_local_refuses_a_target_path_without_pprof(go_app, tmp_path, kprof):
    run = kprof("local", "--target", go_app.url + "/nothing-here", "--on-demand-interval", "30",
                "--out", str(tmp_path / "profiles"))
    assert run.wait(30) == 1, run.output()
    assert run.stderr == [
        f"kprof local: --target {go_app.url}/nothing-here/: answered HTTP 404 (is net/http/pprof served at that path?)"
    ]


def test_local_refuses_a_folder_it_cannot_write(go_app, tmp_path, kprof):
    out = a_file_in_the_way(tmp_path)
    run = kprof("local", "--target", go_app.url, "--on-demand-interval", "30", "--out", str(out))
    assert run.wait(30) == 1, run.output()
    assert run.stderr == [f"kprof local: --out {out}: cannot write there: Not a directory"]


def test_local_refuses_a_bucket_that_does_not_exist(go_app, s3, tmp_path, kprof):
    run = kprof("local", "--target", go_app.url, "--on-demand-interval", "30", "--to", "s3://no-such-bucket",
                "--s3-endpoint", s3.endpoint_url, "--spool-dir", str(tmp_path / "spool"))
    assert run.wait(60) == 1, run.output()
    [line] = run.stderr
    assert line.startswith("kprof local: --to: s3://no-such-bucket") and "the bucket does not exist" in line, line


def test_local_spools_while_s3_is_down_and_uploads_when_it_is_back(go_app, s3, s3_bucket, tmp_path, kprof):
    s3.down()
    spool = tmp_path / "spool"
    run = kprof("local", "--target", go_app.url, "--on-demand-interval", "30", "--types", "heap",
                "--to", f"s3://{s3_bucket}/local", "--s3-endpoint", s3.endpoint_url, "--spool-dir", str(spool))
    run.wait_for(lambda line: line.startswith("warning: --to: ") and f"profiles wait in {spool}" in line, timeout=90)
    run.wait_for(lambda line: "heap" in line and " spooled " in line, timeout=90)
    assert [path.suffix for path in spool.rglob("*.spool")] == [".spool"]
    s3.up()
    run.send(signal.SIGINT)  # the spool is flushed on the way out
    assert run.wait(90) == 0, run.output()
    [stored] = [o for o in s3.objects(s3_bucket) if o["key"].endswith(".pprof")]
    assert stored["key"].startswith("local/") and stored["key"].endswith("heap.pprof"), stored
    assert list(spool.rglob("*.spool")) == []


def test_local_retries_a_failing_capture_with_backoff_and_exits_1(go_app, tmp_path, kprof):
    # A 64-byte cap makes every heap profile fail; the check runs every second.
    run = kprof("local", "--target", go_app.url, "--on-demand-interval", "30", "--check-interval", "1",
                "--types", "heap", "--max-profile-bytes", "64", "--out", str(tmp_path / "profiles"))
    run.wait_for(lambda line: "FAILED" in line, timeout=60)
    first = time.monotonic()
    index, _ = run.wait_for(lambda line: "(backoff: 1)" in line, timeout=30)
    run.wait_for(lambda line: "(backoff: 1)" in line, after=index + 1, timeout=30)
    run.wait_for(lambda line: "(backoff: 1)" in line, after=index + 2, timeout=30)
    assert time.monotonic() - first < cadence.RETRY_FIRST_SECONDS
    run.send(signal.SIGINT)
    assert run.wait(30) == 1, run.output()
    # One attempt, then checks that held back: not one failure per check.
    assert sum("FAILED" in line for line in run.stdout) == 1, run.output()
    assert run.stdout[-1].endswith("; 1 profile(s) failed"), run.output()


def test_local_exits_0_when_everything_asked_for_was_stored(go_app, tmp_path, kprof):
    run = kprof("local", "--target", go_app.url, "--on-demand-interval", "30", "--types", "heap",
                "--duration", "3", "--out", str(tmp_path / "profiles"))
    assert run.wait(60) == 0, run.output()
    assert [path.name for path in (tmp_path / "profiles").rglob("*.pprof")] == ["heap.pprof"]


# -- kprof sidecar -------------------------------------------------------------------------------


def test_sidecar_refuses_a_bucket_that_does_not_exist(go_app, s3, tmp_path, kprof):
    spec = {"onDemand": {"enabled": True, "intervalSeconds": 30}, "profileTypes": ["heap"],
            "s3Config": {"bucket": "no-such-bucket", "endpoint": s3.endpoint_url}}
    env = sidecar_env(tmp_path, podinfo_dir(tmp_path, go_app.port), spec)
    run = kprof("sidecar", "--target", go_app.url, "--health-addr", "127.0.0.1:0", env=env)
    assert run.wait(60) == 1, run.output()
    failures = [record for record in run.json_logs() if record["msg"].startswith("cannot start")]
    assert len(failures) == 1, run.output()
    [failure] = failures
    assert failure["msg"].startswith("cannot start: spec.s3Config.bucket: s3://no-such-bucket"), failure
    assert "the bucket does not exist" in failure["msg"]


# -- kprof run -----------------------------------------------------------------------------------


def test_run_names_the_flag_when_the_lease_namespace_does_not_exist(control_plane, kprof):
    run = kprof("run", "--kubeconfig", str(control_plane.kubeconfig), "--namespace", "no-such-namespace",
                "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
    assert run.wait(30) == 1, run.output()
    records = run.json_logs()
    [failure] = [record for record in records if record["msg"].startswith("cannot start")]
    assert "namespace 'no-such-namespace' does not exist" in failure["msg"] and "--namespace" in failure["msg"]
    assert not any("404" in record["msg"] for record in records), run.output()


# -- kprof plan ----------------------------------------------------------------------------------


def test_plan_names_the_state_file_when_the_state_is_bad(tmp_path):
    import subprocess

    state = tmp_path / "state.json"
    state.write_text(json.dumps({"now": "2026-11-25T10:00:00Z", "pods": 3}))
    config = REPO_ROOT / "examples" / "profilingconfigs" / "threshold.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "kprof_lib.runtimes.cli", "plan", "--config", str(config), "--state", str(state)],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"{state}: invalid cluster state"), result.stderr
    assert str(config) not in result.stderr
