"""双随机 draw: the reference algorithm, standard library only.

This one file is all an outsider needs to check a published plan (一公开):

    python doublerandom.py plan.json        # prints "identical" or what differs; exit 0 / 1

A plan is committed before its seed exists. The commitment is the sha256 of the canonical JSON
of its ingredients:
  ratios         by tier (decimal strings as written, e.g. "0.05")
  frame          entities per tier; position p of a tier is the p-th USCC of that tier in
                 ascending order (the snapshot itself is hashed in frame_sha256)
  exclusions     (tier, position, reason): not inspected this time, e.g. inspected in the last 90 days
  inspectors     (id, unit) of the department's register; recusals (tier, position, inspector)
  team_size      inspectors per target (2)
The seed is sha256("<commitment>|<value>") where value is published only after the commitment
(the output hash of the first nightly publication after it), so nobody knows the draw when
committing and nobody can choose it afterwards.

Draw, per tier A..D:
  k = floor(ratio * N + 1/2), at most N, in exact decimal arithmetic on the WHOLE tier (N counts
  excluded entities too); positions in ascending sha256("<seed>|<tier>|<position>") order; walk
  that order taking positions until k are taken, skipping excluded ones (each is replaced by the
  next in the order, so the inspected share stays the ratio; the skipped are listed with reasons).
Inspectors, per drawn target, the most constrained first (fewest inspectors left after recusals,
then tier, position): candidates are inspectors not recused from it, ranked by (current load,
sha256("<seed>|<tier>|<position>|<inspector>")); the team takes the best candidate, then
repeatedly the best one from a unit not yet in the team (any unit if none). Serving constrained
targets first keeps workloads balanced when some inspectors are recused from many targets.
"""

from __future__ import annotations

import hashlib
import json
import sys
from decimal import ROUND_FLOOR, Decimal

ALGORITHM = "double-random-sha256/3"  # /3: inspector teams serve the most constrained target first
TIERS = ("A", "B", "C", "D")


class DrawError(ValueError):
    """A draw that cannot be made as committed (e.g. recusals leave too few inspectors)."""


def canonical(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def commitment_sha256(ingredients: dict) -> str:
    return sha256_text(canonical(ingredients))


def derive_seed(commitment: str, published_value: str) -> str:
    return sha256_text(f"{commitment}|{published_value}")


def tier_count(ratio, n: int) -> int:
    """k = floor(ratio × N + 1/2) (round half up) in exact decimals, never above N."""
    k = (Decimal(str(ratio)) * n + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR)
    return min(n, int(k))


def _key(seed: str, *parts) -> str:
    return sha256_text("|".join([seed, *map(str, parts)]))


def draw(ingredients: dict, seed: str) -> dict:
    """The draw and inspector assignment a committed plan and its seed determine."""
    excluded = {
        (e["tier"], int(e["position"])): e["reason"] for e in ingredients.get("exclusions", [])
    }
    drawn, skipped = [], []
    for tier in TIERS:
        n = int(ingredients["frame"].get(tier, 0))
        k = tier_count(ingredients["ratios"].get(tier, "0"), n)
        if not k:
            continue
        taken = 0
        for pos in sorted(range(n), key=lambda p: _key(seed, tier, p)):
            if taken == k:
                break
            if (tier, pos) in excluded:
                skipped.append({"tier": tier, "position": pos, "reason": excluded[(tier, pos)]})
                continue
            drawn.append({"tier": tier, "position": pos, "rank": taken})
            taken += 1
    return {
        "algorithm": ALGORITHM,
        "seed": seed,
        "drawn": drawn,
        "skipped": skipped,
        "assignments": assign(ingredients, drawn, seed),
    }


def assign(ingredients: dict, drawn: list[dict], seed: str) -> list[dict]:
    inspectors = ingredients.get("inspectors", [])
    if not inspectors:
        return []
    unit = {i["id"]: i["unit"] for i in inspectors}
    load = {i: 0 for i in sorted(unit)}
    recused: dict[tuple, set] = {}
    for r in ingredients.get("recusals", []):
        recused.setdefault((r["tier"], int(r["position"])), set()).add(r["inspector"])
    size = int(ingredients.get("team_size", 2))
    out = {}

    def n_free(d):
        return sum(1 for i in load if i not in recused.get((d["tier"], d["position"]), set()))

    for d in sorted(drawn, key=lambda d: (n_free(d), d["tier"], d["position"])):
        target = (d["tier"], d["position"])
        out_of = recused.get(target, set())
        free = [i for i in load if i not in out_of]
        if len(free) < size:
            raise DrawError(
                f"only {len(free)} inspectors may inspect {d['tier']}#{d['position']} after recusals; "
                f"{size} are required"
            )
        ranked = sorted(free, key=lambda i: (load[i], _key(seed, d["tier"], d["position"], i)))
        team: list[str] = []
        while len(team) < size:
            units = {unit[i] for i in team}
            pick = next((i for i in ranked if i not in team and unit[i] not in units), None)
            team.append(pick or next(i for i in ranked if i not in team))
        for i in team:
            load[i] += 1
        out[target] = {
            "tier": d["tier"],
            "position": d["position"],
            "inspectors": team,
            "units": [unit[i] for i in team],
            "recused": sorted(out_of & set(unit)),
        }
    return [out[(d["tier"], d["position"])] for d in drawn]


def verify(doc: dict) -> list[str]:
    """What differs between a published plan and a redo from its ingredients ([] = identical).
    Checks the current draw and every abandoned one on record."""
    problems = []
    for label, part in [("draw", doc)] + [
        (f"abandoned draw {i + 1}", a) for i, a in enumerate(doc.get("abandoned", []))
    ]:
        if part["ingredients"].get("algorithm") != ALGORITHM:
            problems.append(
                f"{label}: made with {part['ingredients'].get('algorithm')}; this script is {ALGORITHM}"
            )
            continue
        if commitment_sha256(part["ingredients"]) != part["commitment_sha256"]:
            problems.append(f"{label}: ingredients do not hash to the published commitment")
            continue
        if part.get("draw") is None:
            continue
        seed = derive_seed(part["commitment_sha256"], part["seed_source"]["value"])
        if seed != part["draw"]["seed"]:
            problems.append(f"{label}: seed differs")
            continue
        redo = draw(part["ingredients"], seed)
        for field in ("drawn", "skipped", "assignments"):
            if redo[field] != part["draw"][field]:
                problems.append(f"{label}: {field} differ")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python doublerandom.py PLAN.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8-sig") as fh:
        doc = json.load(fh)
    problems = verify(doc)
    print("identical" if not problems else "different: " + "; ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
