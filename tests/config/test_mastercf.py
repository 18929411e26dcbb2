"""master.cf services, per-service -o overrides, listeners and transports (master(5))."""
import logging
import pathlib
import shutil
import socket

import pytest

from relayd.config import ConfigError, Service, load_config

DATA = pathlib.Path(__file__).parent / "data"

MAIN = "myhostname = mx.example.com\n"


def listeners(config):
    return [(s.name, s.listen) for s, _ in config.smtpd_listeners()]


def test_service_fields_and_continuation_lines():
    config = load_config(main_cf=MAIN, master_cf=(
        "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
        "127.0.0.1:2525 inet n - y - 7 smtpd\n"
        "  -o smtpd_helo_required=yes\n"
        "  -o { smtpd_banner = $myhostname ready for you }\n"
        "  -v\n"))
    (service,) = config.services
    assert service == Service(
        name="127.0.0.1:2525", type="inet", private="n", unpriv="-", chroot="y", wakeup="-",
        maxproc=7, command="smtpd", args=("-v",),
        overrides={"smtpd_helo_required": "yes",
                   "smtpd_banner": "$myhostname ready for you"},
        file="master.cf", line=2, listen=("127.0.0.1", 2525))


@pytest.mark.parametrize("name, listen", [
    ("smtp", ("", 25)), ("submission", ("", 587)), ("smtps", ("", 465)), ("2525", ("", 2525)),
    ("127.0.0.1:smtp", ("127.0.0.1", 25)), ("[::1]:10025", ("::1", 10025)),
    ("mx.example.com:26", ("mx.example.com", 26)),
])
def test_inet_service_names(name, listen):
    config = load_config(master_cf=f"{name} inet n - n - - smtpd\n")
    assert config.services[0].listen == listen


def test_o_overrides_give_a_second_listener_different_settings():
    config = load_config(main_cf=MAIN + "message_size_limit = 1000000\n", master_cf=(
        "127.0.0.1:25 inet n - n - - smtpd\n"
        "127.0.0.1:587 inet n - n - - smtpd\n"
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o message_size_limit=50000000\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"))
    (mx, mx_config), (sub, sub_config) = config.smtpd_listeners()
    assert (mx.listen, sub.listen) == (("127.0.0.1", 25), ("127.0.0.1", 587))
    assert mx_config["message_size_limit"] == 1000000
    assert mx_config["smtpd_sasl_auth_enable"] is False
    assert sub_config["message_size_limit"] == 50000000
    assert sub_config["smtpd_sasl_auth_enable"] is True
    assert sub_config["smtpd_relay_restrictions"] == ["permit_sasl_authenticated", "reject"]
    assert sub_config["myhostname"] == "mx.example.com"
    assert config["message_size_limit"] == 1000000


def test_service_name_is_known_to_the_service():
    config = load_config(master_cf=(
        "127.0.0.1:587 inet n - n - - smtpd -o syslog_name=postfix/$service_name\n"))
    (_, service_config), = config.smtpd_listeners()
    # syslog_name is not used by relayd (compat): its expanded text is what shows it.
    assert service_config.expand("$syslog_name") == "postfix/127.0.0.1:587"


def test_listeners_can_bind_what_the_config_says():
    # The resolved (host, port) pairs are what a socket binds: prove it on loopback.
    config = load_config(master_cf="127.0.0.1:0 inet n - n - - smtpd\n")
    (service, _), = config.smtpd_listeners()
    with socket.create_server(service.listen) as server:
        assert server.getsockname()[0] == "127.0.0.1"


def test_bad_override_value_names_the_master_cf_line(confdir):
    directory = confdir(main_cf=MAIN, master_cf=(
        "smtp inet n - n - - smtpd\n"
        "submission inet n - n - - smtpd\n"
        "  -o smtpd_timeout=forever\n"))
    with pytest.raises(ConfigError) as err:
        load_config(directory)
    assert str(err.value) == (f"{directory}/master.cf, line 2: parameter smtpd_timeout: "
                              "bad time value or unit: forever")


@pytest.mark.parametrize("line, message", [
    ("smtp inet n - n - - postscreen", "inet service smtp: command postscreen is not supported"),
    ("smtp inet n - n - -", "missing fields"),
    ("smtp tcp n - n - - smtpd", "bad transport type: tcp"),
    ("smtp inet x - n - - smtpd", "bad private field: x"),
    ("smtp inet n - n - many smtpd", "bad maximal process limit: many"),
    ("nosuchservice inet n - n - - smtpd", "unknown service: nosuchservice/tcp"),
    ("::1:25 inet n - n - - smtpd", "write an IPv6 address as [addr]:port"),
    ("smtp inet n - n - - smtpd -o", "option -o requires a name=value argument"),
])
def test_master_cf_errors_name_the_line(confdir, line, message):
    directory = confdir(master_cf=f"# comment\n\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_config(directory)
    assert str(err.value).startswith(f"{directory}/master.cf, line 3: ")
    assert message in str(err.value)


def test_debian_stock_files_load_without_warnings(tmp_path, caplog, debian_main_cf):
    (tmp_path / "main.cf").write_text(debian_main_cf)
    shutil.copy(DATA / "debian-master.cf", tmp_path / "master.cf")
    with caplog.at_level(logging.INFO, logger="relayd.config"):
        config = load_config(str(tmp_path))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(info) == 1 and "pickup" in info[0] and "maildrop" in info[0]
    assert listeners(config) == [("smtp", ("", 25))]     # "": on $inet_interfaces
    assert config["mydestination"] == [
        "mx.example.org", "mx.example.org", "localhost.example.org", "localhost"]
    assert config["smtpd_tls_security_level"] == "may"
    assert config.delivery_concurrency() == 100
    relay = next(s for s in config.services if s.name == "relay")
    assert relay.command == "smtp" and relay.overrides == {"syslog_name": "postfix/$service_name"}


def test_delivery_concurrency_comes_from_the_smtp_service_maxproc():
    master = "smtp inet n - n - - smtpd\nsmtp unix - - n - 40 smtp\nrelay unix - - n - 5 smtp\n"
    assert load_config(master_cf=master).delivery_concurrency() == 40
    assert load_config(master_cf="smtp unix - - n - - smtp\n",
                       default_process_limit=12).delivery_concurrency() == 12


def test_pipe_transport_is_refused_with_its_line(confdir):
    stock = (DATA / "debian-master.cf").read_text()
    line = stock.splitlines().index("maildrop  unix  -       n       n       -       -       pipe") + 1
    directory = confdir(main_cf=MAIN + "default_transport = maildrop\n", master_cf=stock)
    with pytest.raises(ConfigError) as err:
        load_config(directory)
    assert str(err.value) == (f"{directory}/master.cf, line {line}: parameter default_transport: "
                              "pipe(8) transport maildrop is not supported yet")


def test_pipe_service_alone_loads_and_relay_transport_with_nexthop_is_checked():
    master = ("smtp inet n - n - - smtpd\nuucp unix - n n - - pipe\n"
              "  flags=Fqhu user=uucp argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)\n")
    load_config(master_cf=master)
    with pytest.raises(ConfigError, match="line 2: parameter relay_transport: pipe"):
        load_config(master_cf=master, relay_transport="uucp:gateway.example")
