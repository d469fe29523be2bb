"""The few things the world takes from packages below it, in one place (the sampling code is
being rewritten in issue #19: switching to its public draw is a change here only)."""
from ..calibration import decayed_counts, point_in_time_records, policy_half_lives, policy_scores  # noqa: F401
from ..catalogue import CONFIG_DIR, Catalogue, canonical_json, content_hash, load_document  # noqa: F401
from ..evaluate import DAYS_PER_MONTH, Policy  # noqa: F401
from ..sampling import Plan, draw, eligible_population, tier_count  # noqa: F401
