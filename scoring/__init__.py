"""Public credit composite evaluation (公共信用综合评价): the nightly scoring library.

Orchestration-free: nothing here imports Airflow. See scoring.pipeline for the steps.
"""

__version__ = "0.1.0"
