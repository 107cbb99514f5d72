"""OmegaConf resolvers sem registers (idempotent)."""

from __future__ import annotations

import secrets

from omegaconf import OmegaConf


def register() -> None:
    if not OmegaConf.has_resolver("sem_uid"):
        # Cached per config object: Hydra copies the master config's resolver cache into each
        # job's config, so every job of one sweep sees the same token. The argument only names
        # the token (${sem_uid:sweep}); configs saved with ${sem_uid:} resolve as before.
        OmegaConf.register_new_resolver("sem_uid", lambda _name="sweep": secrets.token_hex(3), use_cache=True)
