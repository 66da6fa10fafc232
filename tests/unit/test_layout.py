"""Layout and packaging: the Procfile is the service table, schemas/ is not stale,
and the wheel claims no generic top-level import name."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile

from cocode.core import schema as sch
from cocode.supervisor import SERVICE_NAMES, SERVICES, procfile_text
from support import ROOT, cocode, heavy



def test_procfile_is_the_service_table():
    text = (ROOT / "Procfile").read_text()
    assert text == procfile_text()
    names = [line.split(":", 1)[0] for line in text.splitlines()]
    assert names == list(SERVICE_NAMES) == [s.name for s in SERVICES]
    assert names[:2] == ["bus", "store"], "core services start first"
    for line in text.splitlines():
        name, cmd = line.split(": ", 1)
        assert cmd == f"cocode service {name}"


def test_schema_check_passes_then_fails_when_stale(repo, tmp_path):
    ok = cocode(repo, "schema", "--check")
    assert ok.returncode == 0, ok.stderr

    copy = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", copy)
    fresh = cocode(repo, "schema", "--check", "--dir", str(copy))
    assert fresh.returncode == 0, fresh.stderr  # an exact copy is up to date

    events_schema = copy / "events.schema.json"
    events_schema.write_text(events_schema.read_text().replace('"seq"', '"sequence"', 1))
    stale = cocode(repo, "schema", "--check", "--dir", str(copy))
    assert stale.returncode != 0
    err = stale.stderr.strip().splitlines()
    assert len(err) == 1 and "events.schema.json" in err[0], stale.stderr
    assert "Traceback" not in stale.stderr

    (copy / "wire.schema.json").unlink()
    missing = cocode(repo, "schema", "--check", "--dir", str(copy))
    assert missing.returncode != 0 and "wire.schema.json" in missing.stderr

    # Regenerating makes it pass again, and writes exactly what the repo holds.
    assert cocode(repo, "schema", "--dir", str(copy)).returncode == 0
    assert cocode(repo, "schema", "--check", "--dir", str(copy)).returncode == 0
    for name in sch.documents():
        assert (copy / name).read_text() == (ROOT / "schemas" / name).read_text()


def test_pyproject_maps_services_under_cocode():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    st = cfg["tool"]["setuptools"]
    packages = st["packages"]
    assert all(p == "cocode" or p.startswith("cocode.") for p in packages), packages
    assert st["package-dir"]["cocode.services"] == "services"
    assert cfg["project"]["scripts"]["cocode"] == "cocode.__main__:main"
    deps = " ".join(cfg["project"]["dependencies"]).lower()
    for dep in ("pyzmq", "msgspec", "psutil", "pygit2", "click", "lz4", "sqlite-utils", "pyyaml"):
        assert dep in deps, dep


@heavy
def test_built_wheel_has_only_the_cocode_top_level(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copy(ROOT / "pyproject.toml", src)
    for d in ("cocode", "services"):
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    readme = ROOT / "README.md"
    # The README's content is not this test's business; the build needs the file.
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "# cocode\n")
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("cocode-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        dist_info = [t for t in tops if t.endswith(".dist-info")]
        assert tops - set(dist_info) == {"cocode"}, tops
        top_level = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        if top_level:
            assert zf.read(top_level[0]).decode().split() == ["cocode"]
    for module in (ROOT / "cocode").rglob("*.py"):  # every subpackage is packaged
        assert f"cocode/{module.relative_to(ROOT / 'cocode')}" in names, module
    assert "cocode/services/store.py" in names
    assert "cocode/services/bus.py" in names
    assert not any(n.startswith(("services/", "schemas/")) for n in names)
