"""The wheel carries the schemas from schemas/ (the one source), and an installed kprof loads them
from the package, not from a checkout."""

from __future__ import annotations

import filecmp
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_installed_wheel_uses_its_own_schemas(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("kprof-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(installed)
    for schema in sorted((REPO / "schemas").glob("*.json")):
        assert f"kprof_lib/schemas/{schema.name}" in names
        assert filecmp.cmp(schema, installed / "kprof_lib" / "schemas" / schema.name, shallow=False)
    assert any(name.endswith("entry_points.txt") for name in names)

    # Run from an unrelated directory with only the unpacked wheel (and the dependencies) on the path.
    probe = (
        "import kprof_lib, json, sys; from kprof_lib.spec import schemas; "
        "print(schemas.directory()); "
        "plan = kprof_lib.reconcile({'onDemand': {'enabled': True}}, {'now': '2026-11-25T10:00:00Z', 'pods': []}); "
        "print(json.dumps(plan.summary))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"},
    )
    assert result.returncode == 0, result.stderr
    directory, summary = result.stdout.splitlines()
    assert Path(directory) == installed / "kprof_lib" / "schemas"
    assert summary == '{"activePods": 0, "byAction": {}, "byReason": {}}'
