#!/usr/bin/env python3
"""Draw the PNGs of docs/PERFORMANCE.md from a bench/run.py results file.

    /opt/salt-jupyterhub/venv/bin/python bench/plot.py bench/results/<date>-full.json [--out docs/performance]

Charts are SVG drawn here and rendered to PNG by Debian's chromium through Playwright (what the
browser tests use; no plotting library to install): spawn latency against its floors, qstat calls
per minute against the number of servers, and one timeline per burst (each user's request to
ready, with the bare-servers floor).
"""

import argparse
import html
import json
import pathlib

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 380, 70, 30, 50, 50
BLUE, GREY, RED, GREEN = "#3b6fb6", "#9aa5b1", "#c0392b", "#2e8b57"


def svg(title, body, width=WIDTH, height=HEIGHT):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="DejaVu Sans, sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
            f'{html.escape(title)}</text>{body}</svg>')


def axis_x(x0, x1, y, vmax, label, ticks=6, height=HEIGHT):
    parts = [f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="black"/>']
    for i in range(ticks + 1):
        value = vmax * i / ticks
        x = x0 + (x1 - x0) * i / ticks
        parts.append(f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + 4}" stroke="black"/>'
                     f'<text x="{x}" y="{y + 17}" text-anchor="middle">{value:g}</text>')
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{height - 8}" text-anchor="middle">{html.escape(label)}</text>')
    return "".join(parts)


def nice(value):
    for step in (0.5, 1, 1.5, 2, 2.5, 5, 7.5, 10, 15, 20, 25, 50, 75, 100, 150, 200, 250, 500):
        if value <= step * 6:
            return step * 6
    return value


def spawn_chart(results, raw):
    """One user's spawns (each a dot) against the two floors stacked."""
    spawns = raw.get("spawn.all", [])
    qsub, server = results["spawn.floor_qsub"], results["spawn.floor_server"]
    vmax = nice(max(spawns + [qsub + server, qsub + results.get("spawn.floor_singleuser", 0)]) * 1.1)
    x0, x1 = LEFT + 110, WIDTH - RIGHT
    scale = (x1 - x0) / vmax
    body = [axis_x(x0, x1, HEIGHT - BOTTOM, vmax, "seconds, request to ready")]
    y = TOP + 40
    body.append(f'<text x="{x0 - 8}" y="{y + 5}" text-anchor="end">floors</text>'
                f'<rect x="{x0}" y="{y - 14}" width="{qsub * scale}" height="28" fill="{GREY}"/>'
                f'<rect x="{x0 + qsub * scale}" y="{y - 14}" width="{server * scale}" height="28" fill="{BLUE}" '
                f'opacity="0.6"/><text x="{x0 + (qsub + server) * scale + 6}" y="{y + 5}">qsub to first command '
                f'{qsub:.2f} s + server alone {server:.2f} s</text>')
    single = results.get("spawn.floor_singleuser")
    if single:  # the hub's server (jupyterhub-singleuser) started on its own
        y += 60
        body.append(f'<text x="{x0 - 8}" y="{y + 5}" text-anchor="end">the hub&#8217;s server</text>'
                    f'<rect x="{x0}" y="{y - 14}" width="{qsub * scale}" height="28" fill="{GREY}"/>'
                    f'<rect x="{x0 + qsub * scale}" y="{y - 14}" width="{single * scale}" height="28" '
                    f'fill="{BLUE}" opacity="0.9"/><text x="{x0 + (qsub + single) * scale + 6}" y="{y + 5}">'
                    f'+ jupyterhub-singleuser alone {single:.2f} s</text>')
    y += 70 if single else 90
    body.append(f'<text x="{x0 - 8}" y="{y + 5}" text-anchor="end">through the hub</text>')
    for value in spawns:
        body.append(f'<circle cx="{x0 + value * scale}" cy="{y}" r="6" fill="{RED}" opacity="0.7"/>')
    med = results["spawn.median"]
    body.append(f'<line x1="{x0 + med * scale}" y1="{y - 20}" x2="{x0 + med * scale}" y2="{y + 20}" stroke="black"/>'
                + (f'<text x="{x0 + med * scale + 6}" y="{y - 22}">' if med < vmax / 2 else
                   f'<text x="{x0 + med * scale - 6}" y="{y - 22}" text-anchor="end">')
                + f'median {med:.2f} s: ratio '
                f'{results["spawn.ratio"]:.2f} (target 1.2)'
                + (f'; {results["spawn.ratio_singleuser"]:.2f} against the hub&#8217;s server alone' if single else "")
                + '</text>')
    return svg(f"Spawn latency, one user ({len(spawns)} spawns)", "".join(body))


def qstat_chart(results):
    points = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in results.items() if k.startswith("poll.qstat_per_min."))
    vmax = nice(max([v for _, v in points] + [12]) * 1.2)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    band = (x1 - x0) / len(points)
    body = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>']
    for i in range(7):
        value = vmax * i / 6
        y = y0 - (y0 - y1) * i / 6
        body.append(f'<text x="{x0 - 8}" y="{y + 4}" text-anchor="end">{value:g}</text>'
                    f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/>')
    target = y0 - (y0 - y1) * 12 / vmax
    body.append(f'<line x1="{x0}" y1="{target}" x2="{x1}" y2="{target}" stroke="{RED}" stroke-dasharray="6 4"/>'
                f'<text x="{x1}" y="{target - 6}" text-anchor="end" fill="{RED}">target: at most 12</text>')
    for i, (n, value) in enumerate(points):
        height = (y0 - y1) * value / vmax
        x = x0 + band * i + band * 0.25
        body.append(f'<rect x="{x}" y="{y0 - height}" width="{band * 0.5}" height="{height}" fill="{BLUE}"/>'
                    f'<text x="{x + band * 0.25}" y="{y0 - height - 6}" text-anchor="middle">{value:g}</text>'
                    f'<text x="{x + band * 0.25}" y="{y0 + 17}" text-anchor="middle">{n}</text>')
    body.append(f'<text x="{(x0 + x1) / 2}" y="{HEIGHT - 8}" text-anchor="middle">servers running</text>'
                f'<text x="16" y="{(y0 + y1) / 2}" transform="rotate(-90 16 {(y0 + y1) / 2})" '
                f'text-anchor="middle">qstat calls per minute</text>')
    return svg("The hub's qstat calls per minute", "".join(body))


def burst_chart(results, raw, key, n):
    timeline = raw[f"{key}.{n}.timeline"]
    rows = sorted(timeline.values(), key=lambda t: t[1])
    floor = results.get(f"burst.{n}.floor")
    single = results.get(f"{key}.{n}.floor_singleuser") if key == "burst" else None
    vmax = nice(max([t[1] for t in rows] + [floor or 0, single or 0]) * 1.05)
    row = max(4, min(14, (HEIGHT - TOP - BOTTOM - 20) // len(rows)))
    height = TOP + 20 + row * len(rows) + BOTTOM
    x0, x1 = LEFT, WIDTH - RIGHT
    scale = (x1 - x0) / vmax
    body = [axis_x(x0, x1, height - BOTTOM, vmax, "seconds since the first request", height=height)]
    for i, (start, end, failure) in enumerate(rows):
        y = TOP + 20 + i * row
        colour = RED if failure else GREEN
        body.append(f'<rect x="{x0 + start * scale}" y="{y}" width="{max(1, (end - start) * scale)}" '
                    f'height="{row - 1}" fill="{colour}"/>')
    if floor:
        body.append(f'<line x1="{x0 + floor * scale}" y1="{TOP + 10}" x2="{x0 + floor * scale}" '
                    f'y2="{height - BOTTOM}" stroke="black" stroke-dasharray="5 3"/>'
                    f'<text x="{x0 + floor * scale - 4}" y="{TOP - 4 if single else TOP + 12}" text-anchor="end">'
                    f'{n} bare servers as jobs: '
                    f'{floor:.1f} s</text>')
    if single:
        body.append(f'<line x1="{x0 + single * scale}" y1="{TOP + 16}" x2="{x0 + single * scale}" '
                    f'y2="{height - BOTTOM}" stroke="{BLUE}" stroke-dasharray="5 3"/>'
                    f'<text x="{x0 + single * scale - 4}" y="{TOP + 12}" text-anchor="end" fill="{BLUE}">'
                    f'{n} hub servers (jupyterhub-singleuser) as jobs: {single:.1f} s</text>')
    wall, ratio = results[f"{key}.{n}.wall"], results.get(f"{key}.{n}.ratio")
    title = (f"{n} users press Start at once ({key.replace('_', ', ')}): all ready after {wall:.1f} s"
             + (f", ratio {ratio:.2f}" if ratio else ""))
    return svg(title, "".join(body), height=height)


def render(charts, out_dir):
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(device_scale_factor=1)
        for name, text in charts.items():
            page.set_content(f'<html><body style="margin:0">{text}</body></html>')
            path = out_dir / f"{name}.png"
            page.locator("svg").screenshot(path=str(path))
            written.append(path)
        browser.close()
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent.parent / "docs" / "performance"))
    args = parser.parse_args()
    data = json.loads(pathlib.Path(args.results).read_text())
    results, raw = data["results"], data["raw"]
    charts = {}
    if "spawn.median" in results:
        charts["spawn-latency"] = spawn_chart(results, raw)
    if any(k.startswith("poll.qstat_per_min.") for k in results):
        charts["qstat-per-minute"] = qstat_chart(results)
    for name in raw:
        if name.endswith(".timeline"):
            key, n, _ = name.split(".")
            charts[f"{key.replace('_', '-')}-{n}"] = burst_chart(results, raw, key, int(n))
    for path in render(charts, pathlib.Path(args.out)):
        print(path)


if __name__ == "__main__":
    main()
