"""Packaging for relayd: an SMTP edge relay on gevent, Postfix-compatible."""
from setuptools import find_packages, setup

setup(
    name="relayd",
    version="0.1.0",
    description="SMTP edge relay on gevent, configured like Postfix",
    python_requires=">=3.11",
    packages=find_packages(include=["relayd", "relayd.*"]),
    # Postfix's postconf -d list: the compat parameters relayd.params declares.
    package_data={"relayd": ["postfix-defaults.cf"]},
    install_requires=[
        "gevent>=23.9",
        "dnspython>=2.4",
        "PyMySQL>=1.1",
        "pyOpenSSL>=23.2",
        "prometheus_client>=0.17",
        # regexp:/pcre: tables: matching with a time bound (PCRE syntax, maintained).
        "regex>=2024.4",
    ],
    entry_points={
        "console_scripts": [
            "relayd = relayd.cli.main:main",
            "relayd-postmap = relayd.cli.postmap:main",
            "relayd-postalias = relayd.cli.postalias:postalias_main",
            "relayd-newaliases = relayd.cli.postalias:newaliases_main",
            "relayd-postqueue = relayd.cli.postqueue:main",
            "relayd-mailq = relayd.cli.postqueue:mailq_main",
            "relayd-postsuper = relayd.cli.postsuper:main",
            "relayd-sendmail = relayd.cli.sendmail:main",
            "relayd-postconf = relayd.cli.postconf:main",
            # Postfix's command names, for admins who replace Postfix (same options).
            "postmap = relayd.cli.postmap:main",
            "postalias = relayd.cli.postalias:postalias_main",
            "newaliases = relayd.cli.postalias:newaliases_main",
            "postqueue = relayd.cli.postqueue:main",
            "mailq = relayd.cli.postqueue:mailq_main",
            "postsuper = relayd.cli.postsuper:main",
            "sendmail = relayd.cli.sendmail:main",
            "postconf = relayd.cli.postconf:main",
        ],
        # Restriction-list elements; the built-ins register exactly as a third party would.
        "relayd.plugins": [
            "builtin_relay = relayd.checks.relay:register",
            "builtin_access = relayd.checks.access:register",
            "builtin_syntax = relayd.checks.syntax:register",
            "builtin_modifiers = relayd.checks.modifiers:register",
            "builtin_reserved = relayd.checks.reserved:register",
            "builtin_recipients = relayd.checks.recipients:register",
            "builtin_sender_login = relayd.checks.sender_login:register",
            "builtin_clientcerts = relayd.checks.clientcerts:register",
            "builtin_unknown = relayd.checks.unknown:register",
            "builtin_dnsbl = relayd.checks.dnsbl:register",
        ],
        # Lookup-table types by their "type:" prefix.
        "relayd.tables": [
            "static = relayd.tables.static:StaticTable",
            "inline = relayd.tables.inline:InlineTable",
            "texthash = relayd.tables.texthash:TextHashTable",
            "hash = relayd.tables.hashdb:HashTable",
            "regexp = relayd.tables.regexp:RegexpTable",
            "pcre = relayd.tables.pcre:PcreTable",
            "cidr = relayd.tables.cidr:CidrTable",
            "unix = relayd.tables.unix:UnixTable",
            "mysql = relayd.tables.mysql:MySQLTable",
        ],
    },
)
