"""``sem init``: a new experiment folder from the files shipped in ``sem_core/conf/``: the
commented ``experiment_config.yaml`` (every key sem reads, with its default) and a starter
model file ``models/m_<name>.py`` that runs as it is. Existing files are never overwritten."""

from __future__ import annotations

import re
from pathlib import Path

from sem_core.errors import SemError
from sem_core.settings import EXPERIMENT_CONFIG_NAME

CONF_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_TEMPLATE = CONF_DIR / EXPERIMENT_CONFIG_NAME
MODEL_TEMPLATE = CONF_DIR / "m_example.py"
TEMPLATE_STEM = MODEL_TEMPLATE.stem
DEFAULT_MODEL = "example"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def model_stem(name: str) -> str:
    """``example``, ``m_example`` or ``m_example.py`` -> ``m_example``: model files are
    ``m_<name>.py`` (``sem run`` runs every ``models/m_*.py``)."""
    bare = name.removesuffix(".py")
    bare = bare[2:] if bare.startswith("m_") else bare
    if not _NAME.fullmatch(bare):
        raise SemError(f"model name {name!r}: use letters, digits and _ (not first a digit), e.g. --model ridge")
    return f"m_{bare}"


def experiment_files(folder: Path, model: str = DEFAULT_MODEL) -> dict[Path, str]:
    """What ``create_experiment`` writes: path -> text (the templates, named for ``model``)."""
    stem = model_stem(model)
    return {
        folder / EXPERIMENT_CONFIG_NAME: CONFIG_TEMPLATE.read_text(encoding="utf-8").replace(TEMPLATE_STEM, stem),
        folder / "models" / f"{stem}.py": MODEL_TEMPLATE.read_text(encoding="utf-8").replace(TEMPLATE_STEM, stem),
    }


def create_experiment(folder: Path, model: str = DEFAULT_MODEL) -> list[Path]:
    """Write the experiment folder's files; refuse (writing nothing) if any of them exists."""
    files = experiment_files(Path(folder), model)
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise SemError(
            f"{', '.join(existing)} already exist(s); sem init never overwrites a file: "
            "choose another folder or --model NAME, or move the file away"
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:  # "x": a file created meanwhile is not overwritten
            fh.write(text)
    return list(files)
