"""Investigators' tools over the audit trail: search, statistics, per-person report."""
