"""main.cf and master.cf: parsing, ``$name`` expansion, validation.

``load_config()`` reads a configuration directory the way Postfix does and
returns an immutable ``Config``; every problem is a ``ConfigError`` naming
file, line and parameter, for which relayd exits with ``EX_CONFIG`` (78).
"""
from relayd.config.config import Config, config_directory, load_config
from relayd.config.errors import EX_CONFIG, ConfigError, UnusedParameter
from relayd.config.mastercf import Service

__all__ = ["Config", "ConfigError", "EX_CONFIG", "Service", "UnusedParameter", "config_directory",
           "load_config"]
