"""The providers' deliveries of a period as frames in their own layouts (one function per feed)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from scoring.common.catalogue import Catalogue
from scoring.intake.layouts import (
    CHANGES,
    CREDIT_RECORD,
    DISHONEST,
    INSPECTION,
    LICENCE,
    PENALTY,
    REGISTER,
    Layout,
)
from scoring.world.base import AUTHORITY_SUFFIX, CREDIT_RECORD_PROVIDER, id_numbers, person_names
from scoring.world.build import World
from scoring.world.records import publicity_end_dates

# --------------------------------------------------------------------------- delivery frames


def fmt_dates(rng, d: pd.Series) -> np.ndarray:
    """Dates as providers write them: ISO, slashes, compact, Chinese."""
    d = pd.to_datetime(d)
    iso = d.dt.strftime("%Y-%m-%d")
    y, m, day = (
        d.dt.year.astype("Int64").astype("string"),
        d.dt.month.astype("Int64").astype("string"),
        d.dt.day.astype("Int64").astype("string"),
    )
    slash = y + "/" + m + "/" + day
    compact = d.dt.strftime("%Y%m%d")
    zh = y + "年" + m + "月" + day + "日"
    pick = rng.choice(4, size=len(d), p=[0.7, 0.12, 0.1, 0.08])
    out = np.select([pick == 0, pick == 1, pick == 2], [iso, slash, compact], zh)
    return np.where(d.isna(), "", out)


def _fmt_codes(rng, s: pd.Series) -> np.ndarray:
    """Mostly clean codes; some lower-case or with stray spaces (normalised, not rejected)."""
    s = s.astype(str)
    r = rng.random(len(s))
    return np.where(r < 0.02, s.str.lower(), np.where(r < 0.04, " " + s + " ", s))


def authority_names(ent: pd.DataFrame, idx, provider: str) -> np.ndarray:
    city = ent["city"].to_numpy()[idx]
    return np.char.add(city.astype(str), AUTHORITY_SUFFIX[provider])


def _layout_frame(layout: Layout, data: dict) -> pd.DataFrame:
    """A frame with the layout's standard Chinese headers, blank where the provider sends nothing."""
    n = len(next(iter(data.values())))
    cols = {}
    for canon, aliases in layout.columns.items():
        v = data.get(canon)
        cols[aliases[0]] = (
            np.full(n, "", dtype=object) if v is None else np.asarray(v, dtype=object)
        )
    return pd.DataFrame(cols)


def _str_amount(rng, x: np.ndarray) -> np.ndarray:
    """Amounts, sometimes with thousands separators or full-width digits."""
    s = pd.Series(x).map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    r = rng.random(len(s))
    sep = s.map(lambda v: f"{float(v):,.2f}" if v else v)
    full = s.str.translate({ord(c): 0xFF10 + int(c) for c in "0123456789"})
    return np.where(r < 0.05, sep, np.where(r < 0.08, full, s))


def delivery_frames(
    world: World,
    cat: Catalogue,
    delivered_after: pd.Timestamp | None,
    delivered_until: pd.Timestamp,
    rng,
) -> dict[tuple[str, str], pd.DataFrame]:
    """(provider, feed) -> frame in the provider's layout, for deliveries in (after, until]."""
    ent = world.entities
    rec = _delivered(world.records, delivered_after, delivered_until)
    out: dict[tuple[str, str], pd.DataFrame] = {}
    _register(out, ent, delivered_after, delivered_until, rng)
    _penalties(out, ent, rec, cat, rng)
    _licences(out, ent, rec, cat, rng)
    _inspections(out, ent, rec, rng)
    _dishonest_debtors(out, ent, rec, rng)
    _credit_records(out, ent, rec, cat, rng)
    _changes(out, world, ent, cat, rng, delivered_after, delivered_until)
    _natural_persons(out, ent, cat, rng, delivered_until, world.first_entity)
    return out


def _delivered(
    rec: pd.DataFrame, delivered_after: pd.Timestamp | None, delivered_until: pd.Timestamp
) -> pd.DataFrame:
    """The records delivered in (after, until], with listings re-sent once their removal is known."""
    deliv = rec["decision_date"] + pd.to_timedelta(rec["delivery_lag_days"], unit="D")
    sel = deliv <= delivered_until
    if delivered_after is not None:
        sel &= deliv > delivered_after
    # A listing's removal reaches us when the source re-sends the listing with its removal date
    # and reason (a few days after the removal; never before the listing itself).
    removal = rec["removal_date"] if "removal_date" in rec else pd.Series(pd.NaT, index=rec.index)
    rem_deliv = pd.Series(
        np.maximum(
            (removal + pd.Timedelta(days=3)).to_numpy(), (deliv + pd.Timedelta(days=1)).to_numpy()
        ),
        index=rec.index,
    ).where(removal.notna())
    resend = (rem_deliv <= delivered_until) & (
        (rem_deliv > delivered_after) if delivered_after is not None else True
    )
    resend &= ~(sel & (rem_deliv <= delivered_until))  # delivered with its removal the first time
    known_removed = removal.notna() & (rem_deliv <= delivered_until)
    rec = pd.concat([rec[sel], rec[resend.fillna(False)]])
    rec["removal_date"] = removal.reindex(rec.index).where(
        known_removed.reindex(rec.index).fillna(False).to_numpy()
    )
    rec["removal_reason"] = np.where(rec["removal_date"].notna(), rec.get("removal_reason", ""), "")
    return rec


def _register(out: dict, ent: pd.DataFrame, delivered_after, delivered_until, rng) -> None:
    """The register: entities registered in the period (a snapshot of the register the first time)."""
    fd = partial(fmt_dates, rng)
    reg = ent[
        (ent["reg_date"] <= delivered_until)
        & ((ent["reg_date"] > delivered_after) if delivered_after is not None else True)
    ]
    if len(reg):
        out[("samr", "register")] = _layout_frame(
            REGISTER,
            {
                "uscc": reg["uscc"],
                "subject_name": reg["name"],
                "entity_type": reg["entity_type"],
                "industry": reg["industry"],
                "division_code": reg["division_code"],
                "decision_date": fd(reg["reg_date"]),
                "entity_status": reg["status"],
                "legal_rep_name": reg["legal_rep_name"],
                "legal_rep_id_number": reg["legal_rep_id_number"],
                "phone": reg["phone"],
            },
        )


def _penalties(out: dict, ent: pd.DataFrame, rec: pd.DataFrame, cat: Catalogue, rng) -> None:
    """双公示 penalties, per provider."""
    fd = partial(fmt_dates, rng)
    pen = rec[rec["kind"].isin(["PENALTY", "PENALTY_SEVERE"])]
    for prov in sorted(pen["penalty_provider"].unique()):
        p = pen[pen["penalty_provider"] == prov]
        pe = p["entity"].to_numpy()
        item = np.where(p["kind"] == "PENALTY_SEVERE", "PENALTY_SEVERE", "PENALTY_GENERAL")
        pub_end = pd.Series(pd.NaT, index=p.index, dtype="datetime64[ns]")
        for it in ("PENALTY_GENERAL", "PENALTY_SEVERE"):
            m = item == it
            pub_end[m] = publicity_end_dates(
                cat, it, p["decision_date"][m], p["publicity_months_draw"].to_numpy()[m]
            )
        pr = cat.provider(prov)
        doc = p["doc_number"].to_numpy()
        out[(prov, "penalty")] = _layout_frame(
            PENALTY,
            {
                "subject_name": ent["name"].to_numpy()[pe],
                "subject_category": ent["subject_category"].to_numpy()[pe],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[pe])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[pe],
                "legal_rep_id_type": np.full(len(p), "身份证"),
                "legal_rep_id_number": ent["legal_rep_id_number"].to_numpy()[pe],
                "doc_number": doc,
                "violation_type": np.full(len(p), "违反" + pr["name"][-6:] + "管理规定"),
                "violation_facts": np.full(len(p), "经查，当事人存在违法行为"),
                "legal_basis": np.full(len(p), "依据相关法律法规"),
                "penalty_category": p["penalty_category"].to_numpy(),
                "penalty_content": np.char.add(
                    "罚款", p["fine_wan_yuan"].round(2).astype(str).to_numpy().astype(str)
                ),
                "fine_wan_yuan": _str_amount(rng, p["fine_wan_yuan"].to_numpy()),
                "decision_date": fd(p["decision_date"]),
                "publicity_end": fd(pub_end),
                "provider_grade": p["provider_grade"].to_numpy(),
                "authority_name": authority_names(ent, pe, prov),
                "source_unit": np.full(len(p), pr["name"]),
                "source_unit_uscc": np.full(len(p), pr["uscc"]),
            },
        )


def _licences(out: dict, ent: pd.DataFrame, rec: pd.DataFrame, cat: Catalogue, rng) -> None:
    fd = partial(fmt_dates, rng)
    lic = rec[rec["kind"] == "LICENCE"]
    if len(lic):
        le = lic["entity"].to_numpy()
        valid_to = lic["decision_date"] + pd.to_timedelta(lic["licence_years"] * 365, unit="D")
        out[("samr", "licence")] = _layout_frame(
            LICENCE,
            {
                "subject_name": ent["name"].to_numpy()[le],
                "subject_category": ent["subject_category"].to_numpy()[le],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[le])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[le],
                "doc_title": np.full(len(lic), "准予行政许可决定书"),
                "doc_number": lic["doc_number"].to_numpy(),
                "licence_category": np.full(len(lic), "普通"),
                "licence_name": np.array(
                    ["食品经营许可证", "道路运输经营许可证", "排污许可证", "建筑业企业资质证书"]
                )[lic["record_no"].to_numpy() % 4],
                "licence_number": np.char.add(
                    "JY", lic["record_no"].astype(str).to_numpy().astype(str)
                ),
                "decision_date": fd(lic["decision_date"]),
                "valid_from": fd(lic["decision_date"]),
                "valid_to": fd(valid_to),
                "authority_name": authority_names(ent, le, "samr"),
                "licence_status": np.full(len(lic), "1"),
                "source_unit": np.full(len(lic), cat.provider("samr")["name"]),
                "source_unit_uscc": np.full(len(lic), cat.provider("samr")["uscc"]),
            },
        )


def _inspections(out: dict, ent: pd.DataFrame, rec: pd.DataFrame, rng) -> None:
    fd = partial(fmt_dates, rng)
    ins = rec[rec["kind"] == "INSPECTION"]
    if len(ins):
        ie = ins["entity"].to_numpy()
        task = ins["doc_number"].to_numpy()
        result = np.where(
            ins["inspection_failed"],
            np.array(["发现问题，已责令改正", "发现问题，移交处理"])[
                ins["record_no"].to_numpy() % 2
            ],
            "未发现问题",
        )
        out[("samr", "inspection")] = _layout_frame(
            INSPECTION,
            {
                "doc_number": task,
                "subject_name": ent["name"].to_numpy()[ie],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[ie])),
                "decision_date": fd(ins["decision_date"]),
                "inspection_result": result,
                "authority_name": authority_names(ent, ie, "samr"),
                # How the entity came to be inspected: a complaint (not random) or the tier's draw.
                "remarks": np.where(
                    ins["inspection_mode"] == "complaint",
                    "投诉举报",
                    "双随机抽查（" + ins["tier_at_draw"].astype(str) + "档）",
                ),
            },
        )


def _dishonest_debtors(out: dict, ent: pd.DataFrame, rec: pd.DataFrame, rng) -> None:
    fd = partial(fmt_dates, rng)
    dd = rec[rec["kind"] == "DISHONEST_DEBTOR"]
    if len(dd):
        de = dd["entity"].to_numpy()
        out[("court", "dishonest_debtor")] = _layout_frame(
            DISHONEST,
            {
                "subject_name": ent["name"].to_numpy()[de],
                "subject_code": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[de])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[de],
                "authority_name": authority_names(ent, de, "court"),
                "province": np.full(len(dd), "黑龙江"),
                "basis_doc_number": np.char.add(
                    "（2024）黑民初", dd["record_no"].astype(str).to_numpy().astype(str)
                ),
                "filing_date": fd(dd["decision_date"] - pd.Timedelta(days=60)),
                "doc_number": dd["doc_number"].to_numpy(),
                "basis_unit": authority_names(ent, de, "court"),
                "obligation": np.full(len(dd), "支付款项"),
                "performance": np.full(len(dd), "全部未履行"),
                "circumstances": np.full(len(dd), "有履行能力而拒不履行生效法律文书确定义务"),
                "decision_date": fd(dd["decision_date"]),
                "removal_date": fd(dd["removal_date"]),
                "removal_reason": dd["removal_reason"].to_numpy(),
            },
        )


def _credit_records(out: dict, ent: pd.DataFrame, rec: pd.DataFrame, cat: Catalogue, rng) -> None:
    fd = partial(fmt_dates, rng)
    cr = rec[rec["kind"].isin(list(CREDIT_RECORD_PROVIDER))]
    for prov in sorted(set(CREDIT_RECORD_PROVIDER.values())):
        p = cr[cr["kind"].map(CREDIT_RECORD_PROVIDER) == prov]
        if not len(p):
            continue
        pe = p["entity"].to_numpy()
        pub_end = pd.Series(pd.NaT, index=p.index, dtype="datetime64[ns]")
        for it in sorted(p["kind"].unique()):
            m = (p["kind"] == it).to_numpy()
            pub_end[m] = publicity_end_dates(
                cat, it, p["decision_date"][m], p["publicity_months_draw"].to_numpy()[m]
            )
        pr = cat.provider(prov)
        out[(prov, "credit_record")] = _layout_frame(
            CREDIT_RECORD,
            {
                "item_code": p["kind"].to_numpy(),
                "subject_name": ent["name"].to_numpy()[pe],
                "subject_category": ent["subject_category"].to_numpy()[pe],
                "uscc": _fmt_codes(rng, pd.Series(ent["uscc"].to_numpy()[pe])),
                "legal_rep_name": ent["legal_rep_name"].to_numpy()[pe],
                "doc_number": p["doc_number"].to_numpy(),
                "decision_date": fd(p["decision_date"]),
                "publicity_end": fd(pub_end),
                "amount_yuan": _str_amount(rng, p["amount_yuan"].to_numpy()),
                "removal_date": fd(p["removal_date"]),
                "removal_reason": p["removal_reason"].to_numpy(),
                "authority_name": authority_names(ent, pe, prov),
                "source_unit": np.full(len(p), pr["name"]),
            },
        )


def _changes(
    out: dict,
    world: World,
    ent: pd.DataFrame,
    cat: Catalogue,
    rng,
    delivered_after,
    delivered_until,
) -> None:
    """Changes, delivered by the platform once the record itself has been delivered."""
    fd = partial(fmt_dates, rng)
    allrec = world.records.set_index("record_no")
    ch = world.changes
    if len(ch):
        rec_deliv = allrec["decision_date"] + pd.to_timedelta(allrec["delivery_lag_days"], unit="D")
        ch_deliv = pd.Series(
            np.maximum(
                (ch["effective_date"] + pd.to_timedelta(ch["lag_days"], unit="D")).to_numpy(),
                (ch["record_no"].map(rec_deliv) + pd.Timedelta(days=1)).to_numpy(),
            ),
            index=ch.index,
        )
        sel = (ch_deliv <= delivered_until) & (
            (ch_deliv > delivered_after) if delivered_after is not None else True
        )
        c = ch[sel]
        if len(c):
            r = allrec.loc[c["record_no"]]
            ce = r["entity"].to_numpy()
            item = (
                r["kind"]
                .map({"PENALTY": "PENALTY_GENERAL", "INSPECTION": "INSPECTION_FAIL"})
                .fillna(r["kind"])
            )
            out[("ndrc", "credit_change")] = _layout_frame(
                CHANGES,
                {
                    "op": c["op"].to_numpy(),
                    "doc_number": r["doc_number"].to_numpy(),
                    "subject_code": ent["uscc"].to_numpy()[ce],
                    "subject_name": ent["name"].to_numpy()[ce],
                    "item_code": item.to_numpy(),
                    "effective_date": fd(c["effective_date"]),
                    "result": c.get("result", pd.Series("", index=c.index)).fillna("").to_numpy(),
                    "new_publicity_end": fd(
                        c.get("new_publicity_end", pd.Series(pd.NaT, index=c.index))
                    ),
                    "new_item_code": c.get("new_item_code", pd.Series("", index=c.index))
                    .fillna("")
                    .to_numpy(),
                    "new_grade": c.get("new_grade", pd.Series("", index=c.index))
                    .fillna("")
                    .to_numpy(),
                    "source_unit": np.full(len(c), cat.provider("ndrc")["name"]),
                },
            )


def _natural_persons(
    out: dict, ent: pd.DataFrame, cat: Catalogue, rng, delivered_until, first: int = 0
) -> None:
    """Natural persons appear in penalty feeds too (not evaluated, but validated and masked);
    ``first``: where a shard's numbers start (fewer persons than entities: unique per province)."""
    fd = partial(fmt_dates, rng)
    n_np = max(1, len(out.get(("samr", "penalty"), [])) // 25) if ("samr", "penalty") in out else 0
    if n_np:
        pdiv = ent["division_code"].to_numpy()[rng.integers(0, len(ent), n_np)]
        dec = pd.Series(delivered_until - pd.to_timedelta(rng.integers(20, 300, n_np), unit="D"))
        pub_end = publicity_end_dates(cat, "PENALTY_GENERAL", dec, rng.random(n_np))
        npf = _layout_frame(
            PENALTY,
            {
                "subject_name": person_names(rng, n_np),
                "subject_category": np.full(n_np, "自然人"),
                "id_type": np.full(n_np, "身份证"),
                "id_number": id_numbers(rng, n_np, pdiv),
                "doc_number": np.char.add(
                    f"黑市监罚字〔{delivered_until:%Y%m%d}〕NP",
                    np.arange(first, first + n_np).astype(str),
                ),
                "penalty_category": np.full(n_np, "罚款"),
                "fine_wan_yuan": np.round(0.1 + rng.exponential(0.5, n_np), 2).astype(str),
                "decision_date": fd(dec),
                "publicity_end": fd(pub_end),
                "authority_name": np.char.add(
                    ent["city"].to_numpy()[:n_np].astype(str), "市场监督管理局"
                ),
                "source_unit": np.full(n_np, cat.provider("samr")["name"]),
                "source_unit_uscc": np.full(n_np, cat.provider("samr")["uscc"]),
            },
        )
        # Fines of natural persons are above the 200-yuan simplified limit (0.02 万元).
        npf["罚款金额（万元）"] = (
            npf["罚款金额（万元）"].astype(float).clip(lower=0.05).round(2).astype(str)
        )
        out[("samr", "penalty")] = pd.concat([out[("samr", "penalty")], npf], ignore_index=True)
