"""The synthetic province: entities, records, deliveries and defects with their ground truth,
for the demo, the tests and the benchmarks.

May import: packages below it (common … calibration).
"""
