"""A real configuration for rewriting tests: main.cf text through load_config."""
import pytest

from relayd.config import load_config

BASE = {
    "myhostname": "mx.example.com", "mydomain": "example.com", "myorigin": "example.com",
    "mydestination": "example.com, localhost", "inet_interfaces": "127.0.0.1",
    "relay_domains": "relay.example", "recipient_delimiter": "+",
    # The defaults name /etc/aliases.db and unix:passwd.byname, which a test host may lack.
    "alias_maps": "", "local_recipient_maps": "",
}


@pytest.fixture
def make_config(tmp_path):
    """``make_config(**params)``: a checked Config with BASE plus ``params``."""
    def make(**params):
        settings = {**BASE, "queue_directory": str(tmp_path / "queue"), **params}
        return load_config(**settings)
    return make
