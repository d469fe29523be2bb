"""The night's exchange on its report: per source pulled for it, the rows and the watermark
before and after (the stored one moves only once a published night has read the pull), and per
agency with a push target, what was pushed and acknowledged. A failed source or push is one line."""

from __future__ import annotations

import html

from scoring.exchange.night import exchange_status


def exchange_section(store, run: dict) -> list[str]:
    status = exchange_status(store, run["as_of"])
    if not status["sources"] and not status["agencies"]:
        return []
    rows = []
    for s in status["sources"]:
        cls = " class='fail'" if s["status"] == "failed" else ""
        rows.append(
            f"<tr{cls}><td>{html.escape(s['source_id'])}</td><td>{s['kind']}</td>"
            f"<td>{s['status']}</td><td>{s['rows']}</td><td>{s['revoked']}</td>"
            f"<td>{html.escape(str(s['watermark_before'] or '—'))}</td>"
            f"<td>{html.escape(str(s['watermark_after'] or '—'))}</td>"
            f"<td>{html.escape(str(s['watermark_now'] or '—'))}</td>"
            f"<td>{html.escape(str(s['message'] or ''))}</td></tr>"
        )
    out = [
        "<h2>数据交换 Exchange</h2><p>Pulled for this night (a failed source is a missing "
        "delivery of its provider: the freshness gate decides, as for a file not dropped).</p>"
        "<table><tr><th>source</th><th>kind</th><th>status</th><th>rows</th><th>revoked</th>"
        "<th>watermark before</th><th>pulled up to</th><th>stored watermark</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    ]
    if status["agencies"]:
        out.append(
            "<p>Pushed to agencies' systems:</p><table><tr><th>agency</th><th>last pushed</th>"
            "<th>last acknowledged</th><th>outstanding</th><th>failed pushes</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(a['agency_id'])}</td><td>{a['last_pushed'] or '—'}</td>"
                f"<td>{a['last_acknowledged'] or '—'}</td>"
                f"<td>{html.escape(', '.join(a['outstanding']) or 'none')}</td>"
                f"<td>{a['failed']}"
                + (f" — {html.escape(a.get('last_failure') or '')}" if a["failed"] else "")
                + "</td></tr>"
                for a in status["agencies"]
            )
            + "</table>"
        )
    return out
