"""`pip install .` and `pip install -e .` both leave sem's plugins discoverable by Hydra.

PEP 660 editable installs can break Hydra's namespace-package discovery (see the README);
this installs a copy of the repository into fresh virtual environments, the way a user
does (with pip's build isolation), and asks Hydra in a child process what it discovers.
"""

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
import hydra_plugins.sem_plugins as p
import experiment_manager.util  # the predecessor tool's import name is installed with sem
print(json.dumps({
    "sweepers": [c.__name__ for c in Plugins.instance().discover(Sweeper)],
    "launchers": [c.__module__ + "." + c.__name__ for c in Plugins.instance().discover(Launcher)],
    "location": p.__file__,
}))
"""


def make_venv(venv: Path) -> Path:
    """A fresh virtual environment whose dependencies come from this interpreter's site-packages
    (sem itself is installed into it from the copy); returns its python.

    ``venv --system-site-packages`` is not enough: run from inside a virtual environment it
    shows the base interpreter's packages, not those of the environment the tests run in. A
    .pth file in the new environment adds this interpreter's site directories (their own .pth
    files included, as for system site-packages) after the new environment's own."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    outer = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        outer.append(site.getusersitepackages())
    lines = [f"import site; site.addsitedir({d!r})\n" for d in outer if Path(d).is_dir()]
    (Path(purelib) / "_outer_site_packages.pth").write_text("".join(lines))
    return py


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_plugins_are_discovered_after_install(tmp_path, editable):
    import json

    src = tmp_path / "src"
    build_output = shutil.ignore_patterns(
        ".git", "*.egg-info", "runs", "multirun", "node_modules", "__pycache__", "build"
    )

    def not_copied(folder: str, names: list[str]) -> set[str]:
        # a virtualenv made inside the clone (README's recipe makes it outside) is not source
        venvs = {n for n in names if os.path.isfile(os.path.join(folder, n, "pyvenv.cfg"))}
        return set(build_output(folder, names)) | venvs

    shutil.copytree(REPO, src, ignore=not_copied)
    venv = tmp_path / "venv"
    py = make_venv(venv)
    cmd = [str(py), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
    cmd += ["-e", str(src)] if editable else [str(src)]
    subprocess.run(cmd, check=True, cwd=tmp_path)
    out = subprocess.run([str(py), "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert "SemSweeper" in found["sweepers"]
    assert "hydra_plugins.sem_plugins.launcher.LocalLauncher" in found["launchers"]
    expected_root = src if editable else venv
    assert Path(found["location"]).resolve().is_relative_to(expected_root.resolve())
    # and a model file runs end to end with that interpreter
    model = src / "examples" / "regression" / "models" / "m_gd.py"
    run = subprocess.run([str(py), str(model), "+order_id=0"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "1 of 1 jobs completed" in run.stdout
