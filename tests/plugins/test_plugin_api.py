"""relayd.plugin: the versioned surface plugins import from."""
import logging

import pytest

import relayd.plugin as api
from relayd.config import ConfigError


def test_every_advertised_name_exists():
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []


def test_the_version_is_major_minor():
    major, minor = api.API_VERSION.split(".")
    assert (int(major), int(minor)) >= (1, 0)


@pytest.mark.parametrize("version", ["1.0", api.API_VERSION])
def test_a_plugin_written_for_this_api_or_an_older_minor_loads(version):
    api.require_api(version)


@pytest.mark.parametrize("version", ["2.0", "0.9", "1.99"])
def test_a_plugin_needing_another_major_or_a_newer_minor_stops_startup(version):
    with pytest.raises(ConfigError, match=f"needs relayd plugin API {version}"):
        api.require_api(version)


def test_a_malformed_version_is_a_config_error():
    with pytest.raises(ConfigError, match="MAJOR.MINOR"):
        api.require_api("1")


def test_plugin_loggers_reach_the_mail_log_tree():
    assert api.get_logger("example") is logging.getLogger("relayd.example")
