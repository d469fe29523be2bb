"""Reporting: the run report (tiers, migration, gates, quarantine, provider feedback, coverage).

May import: packages below it (common … publication).
"""
