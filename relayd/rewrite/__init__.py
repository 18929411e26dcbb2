"""Address rewriting and lookup: canonical(5), virtual(5), relocated(5),
aliases(5), generic maps and masquerading, as Postfix's cleanup(8),
trivial-rewrite(8), local(8) and smtp(8) apply them.

The session's commit step uses :class:`Rewriter`; the delivery side uses
:class:`LocalAliases` and :class:`GenericMaps`; the recipient checks use
:class:`AddressMaps`. Which domains are local is :mod:`relayd.domains`'s job.
"""
from relayd.rewrite.aliases import Expansion, LocalAliases
from relayd.rewrite.canonical import AliasExpansionError, Canonical
from relayd.rewrite.generic import GenericMaps
from relayd.rewrite.maps import AddressMaps
from relayd.rewrite.rewriter import Rewriter
from relayd.rewrite.virtual import VirtualAliases

__all__ = ["AddressMaps", "AliasExpansionError", "Canonical", "Expansion", "GenericMaps",
           "LocalAliases", "Rewriter", "VirtualAliases"]
