"""The few things the world takes from packages below it, in one place (the sampling code is
being rewritten in issue #19: switching to its public draw is a change here only)."""
from scoring.calibration.learn import (  # noqa: F401
    decayed_counts,
    point_in_time_records,
    policy_half_lives,
    policy_scores,
)
from scoring.common.catalogue import Catalogue  # noqa: F401
from scoring.common.config import CONFIG_DIR, canonical_json, content_hash, load_document  # noqa: F401
from scoring.evaluation.evaluate import DAYS_PER_MONTH, Policy  # noqa: F401
from scoring.sampling.plans import Plan, draw, eligible_population, tier_count  # noqa: F401
