"""Things derived from one configuration, built once and shared.

Domain sets, opened lookup tables and parsed network lists are computed
from a :class:`~relayd.config.Config` the first time a check needs them
and then reused by every session; a reloaded configuration is a new object
and gets its own.
"""
from __future__ import annotations


class PerConfig:
    """Mixin: ``cls.of(config)`` is the one instance of ``cls`` built from ``config``."""

    @classmethod
    def of(cls, config):
        """The instance for ``config``, built on first use (``cls(config)``)."""
        cache = cls.__dict__.get("_per_config")
        if cache is None:  # one cache per class, not shared through inheritance
            cache = {}
            setattr(cls, "_per_config", cache)
        hit = cache.get(id(config))
        if hit is None or hit[0] is not config:
            hit = cache[id(config)] = (config, cls(config))
        return hit[1]
