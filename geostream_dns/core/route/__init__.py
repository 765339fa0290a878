"""Routing policies: which values of a routed record a client gets (SPEC §4)."""
