"""Audit: the run manifest and audit reruns (as known then / as known now) with causes.

May import: packages below it (common … reporting).
"""
