"""relayd: an SMTP edge relay on gevent, configured like Postfix.

The embedding API::

    import gevent
    import relayd

    relay = relayd.Relay(config_directory="/etc/relayd")   # or main_cf="...", or keywords
    relay.start()             # listeners, queue and delivery run as greenlets
    ...
    relay.stop(timeout=10)

Importing this package is cheap: :class:`Relay` and :func:`load_config` are
imported on first use.
"""
__version__ = "0.1.0"

__all__ = ["Relay", "load_config", "__version__"]


def __getattr__(name):
    if name == "Relay":
        from relayd.relay import Relay
        return Relay
    if name == "load_config":
        from relayd.config import load_config
        return load_config
    raise AttributeError(f"module 'relayd' has no attribute {name!r}")
