"""The import name of experiment_manager, the predecessor tool, kept so its model files run unchanged.

``from experiment_manager import Experiment`` is ``from sem_core import Experiment``. New model
files import ``sem_core`` (see docs/experiment-manager.md). Importing
this package warns about nothing: a model file runs once per job, and a line per job would bury
the output that matters.
"""

from sem_core import Experiment, __version__, grid

__all__ = ["Experiment", "grid", "__version__"]
