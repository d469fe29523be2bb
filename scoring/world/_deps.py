"""The few things the world takes from packages below it, in one place (the draws are the
sampling package's own commit-then-draw, scoring.sampling.commit.sample_population)."""

from scoring.calibration.features import (  # noqa: F401
    decayed_counts,
    point_in_time_records,
    policy_half_lives,
)
from scoring.calibration.scores import policy_scores  # noqa: F401
from scoring.common.catalogue import Catalogue  # noqa: F401
from scoring.common.config import CONFIG_DIR, canonical_json, content_hash, load_document  # noqa: F401
from scoring.evaluation.evaluate import DAYS_PER_MONTH, Policy  # noqa: F401
from scoring.history.policy_registry import seed_entries  # noqa: F401
from scoring.sampling.commit import exclusions_from_history, sample_population  # noqa: F401
from scoring.sampling.doublerandom import tier_count  # noqa: F401
from scoring.sampling.rules import bounds_for, registry  # noqa: F401
