"""Sampling: double-random inspection plans by tier, inspector assignment, verification, advice.

May import: packages below it (common … audit).
"""
