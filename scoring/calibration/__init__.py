"""Calibration: point-in-time training sets from inspection outcomes, the policy learner,
temporal validation, model cards and promotion of an approved candidate.

May import: packages below it (common … sampling).
"""
