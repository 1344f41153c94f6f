# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's console summary: violations first, then compact TCP and HTTP matrices.

Controller side. The matrices are the report files' own renderers (probe_matrix, http_matrix)
applied to a selection of the rows, so the console and the files never disagree on a cell.
"""

from __future__ import annotations

import textwrap

from ansible_collections.hardened.vllm.plugins.plugin_utils import _http, _probe

PEERS = "peers"
LEGEND_WIDTH = 100


class ConsoleInputError(ValueError):
    """Input that is not what the audit produces."""


def console_lines(tcp_rows, http_rows, violations, blocked, max_rows=20, max_vantages=6):
    """The audit's result as text lines that fit a terminal.

    Violations and allowed-but-unreachable findings come first, one line each (at most
    ``max_rows`` of each). Then the TCP matrix, its lines that differ from the plan first, at most
    ``max_rows`` lines; then the HTTP matrix with the TLS and plaintext checks and only the routes
    that some vantage may reach or that differ from the plan, at most ``max_rows`` lines. When the
    rows have more than ``max_vantages`` vantages, the nodes' own vantages share one column
    ``peers`` that shows the worst of them.
    """
    for name, value in (("max_rows", max_rows), ("max_vantages", max_vantages)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConsoleInputError(f"{name} must be a whole number of 1 or more, got {value!r}")
    for name, value in (("violations", violations), ("blocked", blocked)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConsoleInputError(f"{name} must be a list of messages, got {value!r}")
    tcp_rows = _rows("TCP", tcp_rows, ("node", "address", "port", "vantage", "finding", "open"))
    http_rows = _rows("HTTP", http_rows, ("node", "address", "port", "vantage", "finding", "check"))

    lines = [
        f"exposure: {len(violations)} violation(s), {len(blocked)} allowed but unreachable; "
        f"{len(tcp_rows)} TCP and {len(http_rows)} HTTP probes"
    ]
    lines += _capped([f"VIOLATION: {m}" for m in violations], max_rows, "violation(s)")
    lines += _capped([f"UNREACHABLE: {m}" for m in blocked], max_rows, "unreachable finding(s)")

    lines += ["", "TCP: node port x vantage"]
    if tcp_rows:
        tcp_rows = _fold_peers(tcp_rows, max_vantages)
        keep, left_out = _select(tcp_rows, _tcp_key, max_rows)
        lines += _matrix(_probe.probe_matrix([r for r in tcp_rows if _tcp_key(r) in keep]))
        lines += _left_out(left_out, "node port(s)")
    else:
        lines.append("no TCP probe ran")

    lines += ["", "HTTP: gateway check or route x vantage"]
    if http_rows:
        http_rows = _fold_peers(http_rows, max_vantages)
        quiet = {_http_key(r) for r in http_rows if not _http_wanted(r)}
        quiet -= {_http_key(r) for r in http_rows if _http_wanted(r)}
        shown = [r for r in http_rows if _http_key(r) not in quiet]
        keep, left_out = _select(shown, _http_key, max_rows)
        lines += _matrix(_http.http_matrix([r for r in shown if _http_key(r) in keep]))
        lines += _left_out(left_out, "gateway line(s)")
        routes = len({k[3:] for k in quiet})
        if routes:
            lines.append(f"{routes} other route(s) refused from every vantage, as the plan says")
    else:
        lines.append("no gateway was called")
    return lines


def _rows(what, rows, fields):
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise ConsoleInputError(f"the {what} findings must be a list of rows, got {rows!r}")
    for index, row in enumerate(rows):
        missing = [f for f in fields if not isinstance(row, dict) or f not in row]
        if missing:
            raise ConsoleInputError(
                f"{what} findings row {index} lacks {', '.join(missing)}: give the rows of "
                f"hardened.vllm.{'probe_findings' if what == 'TCP' else 'http_findings'}"
            )
    return rows


def _capped(lines, most, what):
    if len(lines) <= most:
        return lines
    return [*lines[:most], f"... {len(lines) - most} more {what} (all in exposure.json)"]


def _fold_peers(rows, max_vantages):
    """Rows with the nodes' vantages renamed ``peers`` when there are too many columns.

    The rows that differ from the plan go last: the renderers keep the last row of a cell, so a
    folded cell shows the worst of its peers, and its mark says that it differs.
    """
    vantages = {r["vantage"] for r in rows}
    if len(vantages) <= max_vantages:
        return rows
    nodes = {r["node"] for r in rows}
    folded = [{**r, "vantage": PEERS} if r["vantage"] in nodes else r for r in rows]
    return sorted(folded, key=lambda r: r["finding"] != "ok")


def _tcp_key(row):
    return (row["node"], row["address"], row["port"])


def _http_key(row):
    if row["check"] in ("tls", "plaintext"):
        return (row["node"], row["address"], row["port"], row["check"], "")
    return (row["node"], row["address"], row["port"], row.get("method"), row.get("path"))


def _http_wanted(row):
    """Whether the console shows this row's line: a check, a route the plan lets pass, a finding."""
    return (
        row["check"] in ("tls", "plaintext")
        or row["finding"] != "ok"
        or row.get("expected") == "answered"
    )


def _select(rows, key, most):
    """The keys to show (those with a finding first, then in order), and those left out.

    Left out: ``(differing, as_planned)`` counts.
    """
    order = []
    bad = set()
    for row in rows:
        k = key(row)
        if k not in order:
            order.append(k)
        if row["finding"] != "ok":
            bad.add(k)
    ranked = [k for k in order if k in bad] + [k for k in order if k not in bad]
    rest = ranked[most:]
    return set(ranked[:most]), (sum(k in bad for k in rest), sum(k not in bad for k in rest))


def _left_out(counts, what):
    differing, as_planned = counts
    if not differing and not as_planned:
        return []
    if not differing:
        return [f"... {as_planned} more {what}, all as the plan says (see the report files)"]
    return [
        f"... {differing + as_planned} more {what}, {differing} of them differ from the plan "
        "(their messages are above; all in the report files)"
    ]


def _matrix(text):
    """A renderer's text as lines: the table as it is, its legend wrapped for a terminal."""
    lines = text.rstrip("\n").split("\n")
    end = lines.index("") if "" in lines else len(lines)
    legend = [part for line in lines[end:] for part in textwrap.wrap(line, LEGEND_WIDTH) or [""]]
    return lines[:end] + legend
