"""The random seed of a row: derived from its experiment_id unless the row sets ``seed``, and
applied to ``random``, numpy and torch before the model function runs.

sem never imports numpy or torch itself (numpy alone is a third of the start-up of a one-row
run): a library already imported is seeded at once, one imported later, by ``main`` or at the
top of its module, is seeded as it finishes importing (``SeedOnImport``), before any code can
draw from it. Either way ``main`` sees the same random numbers for the same seed."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from sem_core.errors import ConfigError


def derive_seed(experiment_id: str) -> int:
    """The seed of a row: the first 31 bits of its experiment_id (stable across machines,
    users and sweeps; in range for numpy, random, torch and TensorFlow)."""
    try:
        return int(experiment_id[:8], 16) & 0x7FFFFFFF
    except (TypeError, ValueError):
        raise ValueError(f"experiment_id must be a hex string, got {experiment_id!r}") from None


def with_seed(config: Mapping[str, Any], experiment_id: str) -> dict:
    """``config`` with ``seed`` derived from ``experiment_id``, unless the row sets its own."""
    out = dict(config)
    if "seed" not in out:
        out["seed"] = derive_seed(experiment_id)
        return out
    seed = out["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(
            f"row order_id {out.get('order_id')}: seed must be an integer from 0 to 2**32-1 (numpy's range), "
            f"got {seed!r}; fix the row, or drop its 'seed' key to get one derived from experiment_id"
        )
    return out


def _seed_numpy(module: ModuleType, seed: int) -> None:
    module.seed(seed)  # numpy.random.seed: the global RandomState behind np.random.rand & co


def _seed_torch(module: ModuleType, seed: int) -> None:
    module.manual_seed(seed)


# the module holding each library's global generator, and how to seed it. numpy's is
# numpy.random (numpy 2 imports it only when first used, numpy 1 with numpy itself).
LIBRARY_SEEDERS: dict[str, Callable[[ModuleType, int], None]] = {"numpy.random": _seed_numpy, "torch": _seed_torch}


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's global generator and torch for the job about to run: those
    imported now at once, the others as soon as they finish importing (in this process,
    until the next job's seed replaces this one)."""
    random.seed(seed)
    for finder in [f for f in sys.meta_path if isinstance(f, SeedOnImport)]:
        sys.meta_path.remove(finder)  # a previous job's seed, for a library it never imported
    waiting = {}
    for name, seed_module in LIBRARY_SEEDERS.items():
        module = sys.modules.get(name)
        if module is not None:
            seed_module(module, seed)
        else:
            waiting[name] = seed_module
    if waiting:
        sys.meta_path.insert(0, SeedOnImport(seed, waiting))


class SeedOnImport:
    """A finder on ``sys.meta_path`` that seeds a library's global generator right after the
    library's module is executed, then takes itself off once every library it waits for is
    seeded. It finds nothing itself: the spec comes from the finders behind it, with a
    loader that runs the real one and then seeds (``_SeedingLoader``)."""

    def __init__(self, seed: int, waiting: Mapping[str, Callable[[ModuleType, int], None]]):
        self.seed = seed
        self.waiting = dict(waiting)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.waiting:
            return None
        for finder in list(sys.meta_path):
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # a namespace package or a legacy loader: not a library that has a generator
        spec.loader = _SeedingLoader(spec.loader, self)
        return spec

    def imported(self, module: ModuleType) -> None:
        """``module`` has finished executing: seed it; off ``sys.meta_path`` when nothing is left."""
        seed_module = self.waiting.pop(module.__name__, None)
        if not self.waiting and self in sys.meta_path:
            sys.meta_path.remove(self)
        if seed_module is not None:
            seed_module(module, self.seed)


class _SeedingLoader:
    """The real loader of a library's module, followed by its seeding."""

    def __init__(self, loader: Any, hook: SeedOnImport):
        self.loader = loader
        self.hook = hook

    def __getattr__(self, name: str) -> Any:
        # a spec found without importing (importlib.util.find_spec) may be asked anything a
        # loader answers (is_package, get_source, get_resource_reader): the real loader does
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # the module keeps its real loader (importlib.resources, inspect and reload ask it)
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.hook.imported(module)
