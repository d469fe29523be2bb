"""Foundations every stage may use: configuration-as-data and its hashing, the catalogue, identifier
check digits, administrative divisions, the working-day calendar, errors and plot fonts.

Imports nothing from other scoring packages.
"""
