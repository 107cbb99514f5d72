"""A sem model file with sacred's observers attached: run it with `python models/m_observed.py`.

sem records every run in its own store (models/runs) as always. On top of that, this file
attaches sacred's SqlObserver in sacred's own way (ex.observers.append), and
experiment_config.yaml attaches sacred's FileStorageObserver (sem: observers:). It needs sacred
(sem's extra: pip install 'sem[sacred]') and what SqlObserver needs (pip install sqlalchemy).
"""

from pathlib import Path

from sacred.observers import SqlObserver

from sem_core import Experiment

ex = Experiment(__file__)
# one SQLite file beside the models folder; any SQLAlchemy URL works (postgresql://...)
ex.observers.append(SqlObserver(f"sqlite:///{Path(__file__).resolve().parent.parent / 'runs.sqlite'}"))


@ex.configs
def configs():
    return [{"lr": lr} for lr in (0.1, 0.01)]


@ex.automain
def main(config):
    loss = 1.0
    for step in range(10):
        loss *= 1 - config["lr"]
        ex.log_scalar("loss", loss, step)
    weights = Path("weights.txt")
    weights.write_text(f"lr={config['lr']} loss={loss}")
    ex.add_artifact(weights)
    return loss
