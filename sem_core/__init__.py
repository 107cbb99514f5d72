"""sem: Sacred Experiment Manager."""

from sem_core.experiment import Experiment
from sem_core.grid import grid

__all__ = ["Experiment", "grid"]
__version__ = "0.1.0"
