"""Publication: agency registry and scope, masking of personal data, PostgreSQL roles with row-level
security, and atomic delivery of each agency's files.

May import: packages below it (common, history, intake, quality, evaluation).
"""
