"""sem on Slurm: array planning, container commands, state mapping (pure) and the worker
wrapper and queries (I/O). The Hydra launcher is ``hydra_plugins/sem_plugins/slurm_launcher.py``."""
