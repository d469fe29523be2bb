"""Evaluation: the policy (versioned data), which records count on a date and why others do not,
scores, tiers and reasons (the public credit composite evaluation), and per-entity explanations.

May import: scoring.common, scoring.history, scoring.intake, scoring.quality.
"""
