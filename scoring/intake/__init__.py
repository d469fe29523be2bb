"""Intake: provider layouts (header matching), encodings and file formats, reading a file into
raw rows, staging rows into typed canonical columns, and a night's deliveries.

May import: scoring.common, scoring.history.
"""
