"""Turns crates/loadgen's JSON lines into the acknowledgement table of BENCHMARKS.md (scripts/bench).

Prints the section; with --write FILE, replaces the part of FILE between the markers below (or appends
it when the markers are missing).
"""

import argparse
import datetime
import json
import os
import platform
import statistics

START = "<!-- ack-load:start (written by scripts/bench) -->"
END = "<!-- ack-load:end -->"
SIDES = ["this bot", "Bolt app"]


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, med, hi = min(values), statistics.median(values), max(values)
    if len(values) == 1 or fmt(lo) == fmt(hi):
        return fmt(med)
    return f"{fmt(lo)} / {fmt(med)} / {fmt(hi)}"


def num(v):
    return f"{v:,.0f}"


def ms(v):
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def mib(v):
    return f"{v:,.0f}"


def secs(v):
    return f"{v:.1f}"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--rates", required=True)
    p.add_argument("--duration", required=True)
    p.add_argument("--reps", required=True)
    p.add_argument("--bot-version", required=True)
    p.add_argument("--bolt", required=True)
    p.add_argument("--bolt-shape", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--write")
    a = p.parse_args()

    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    rates = [int(r) for r in a.rates.split(",")]
    by = {}
    for r in rows:
        by.setdefault((r["label"], r["offered_per_s"]), []).append(r)

    out = []
    out.append("## Acknowledging signed commands under load, side by side with Bolt for Python")
    out.append("")
    out.append(
        "**Command:** `" + a.command + "`. It builds the bot in release mode and runs it as `serve` (a process, "
        "as in production) with one cluster whose AWS endpoint refuses connections (the status read behind each "
        "command fails at once, as issue 13's reference measurement did) and Slack pointing at the Slack "
        "stand-in run as a process (`crates/slack-standin`'s `slack-standin` binary, keeping nothing it "
        "receives): the bot posts every command's answer to its response_url, and a closed port there would "
        "turn each answer into retries in its outbox, which is not what acknowledging costs. Beside it runs "
        f"`bench/bolt/ack_only.py`, a Bolt for Python app that acknowledges `/aurora` and does nothing else, "
        f"served as Bolt's documentation recommends for production (the Flask adapter under gunicorn, "
        f"{a.bolt_shape}; {a.bolt}). `crates/loadgen` offers each rate for {a.duration} s open-loop (requests "
        "sent on schedule whatever the answers, at most 1,024 in flight, latency counted from the scheduled "
        "send time so queueing is not hidden, a request unanswered 5 s after its scheduled time is a timeout), "
        "each request a distinct, correctly signed `/aurora status` command; the two sides alternate, "
        f"{a.reps} repetitions."
    )
    out.append("")
    out.append(
        "**Per request:** the bot verifies the signature, records it in its replay table (one indexed `INSERT` "
        "into SQLite, `synchronous=NORMAL`), answers 200, then in the background reads the cluster's status "
        "(refused at once here) and posts the answer to the response_url. The Bolt app verifies the signature "
        "and timestamp and answers 200; it keeps no replay record and does no work after the acknowledgement."
    )
    out.append("")
    out.append(
        f"**Measured** {datetime.date.today().isoformat()} on {machine()}, {a.bot_version}. Cells with "
        "several repetitions read min / median / max (one figure when they agree). Achieved = answered 200 per "
        "second; failed = non-200 answers, transport errors and timeouts over all repetitions; RSS = the "
        "highest VmHWM after the rate over the repetitions (summed over gunicorn's master and workers; the bot's is since its start); CPU = "
        "the target's CPU seconds per 1,000 acknowledgements; loadgen = the load generator's own CPU seconds "
        "for the rate (it shares the 2 cores with the target)."
    )
    out.append("")
    head = "| offered/s | side | achieved/s | failed | p50 ms | p99 ms | max ms | peak RSS MiB | CPU s per 1,000 | loadgen CPU s |"
    out.append(head)
    out.append("|" + "---:|---|" + "---:|" * 8)
    for rate in rates:
        for side in SIDES:
            rs = by.get((side, rate), [])
            if not rs:
                continue
            failed = sum(r["non_200"] + r["errors"] + r["timeouts"] for r in rs)
            cpu_per_k = [
                r["cpu_target_s"] * 1000 / r["ok"] if r["cpu_target_s"] is not None and r["ok"] else None
                for r in rs
            ]
            out.append(
                f"| {rate:,} | {side} | {spread([r['achieved_per_s'] for r in rs], num)} | {failed:,} | "
                f"{spread([r['p50_ms'] for r in rs], ms)} | {spread([r['p99_ms'] for r in rs], ms)} | "
                f"{spread([r['max_ms'] for r in rs], ms)} | "
                f"{mib(max(r['hwm_mib'] for r in rs)) if rs[0]['hwm_mib'] is not None else '-'} | "
                f"{spread(cpu_per_k, lambda v: f'{v:.2f}')} | {spread([r['cpu_loadgen_s'] for r in rs], secs)} |"
            )
    idle = {side: [r["rss_idle_mib"] for r in rows if r["label"] == side and r["rss_idle_mib"] is not None] for side in SIDES}
    out.append("")
    out.append(
        "RSS before the first rate of each repetition: "
        + ", ".join(f"{side} {spread(idle[side], mib)} MiB" for side in SIDES if idle[side])
        + "."
    )
    # Highest offered rate each side sustained (>= 95% answered 200 in every repetition, nothing failed).
    sustained = {}
    for side in SIDES:
        for rate in rates:
            rs = by.get((side, rate), [])
            if rs and all(r["ok"] >= 0.95 * r["sent"] and r["non_200"] + r["errors"] + r["timeouts"] == 0 for r in rs):
                sustained[side] = rate
    out.append(
        "Highest offered rate sustained (every repetition answered at least 95% with 200 and none failed): "
        + ", ".join(f"{side} {sustained[side]:,}/s" if side in sustained else f"{side} none" for side in SIDES)
        + "."
    )
    section = "\n".join(out)
    print(section)

    if a.write:
        with open(a.write) as f:
            text = f.read()
        block = f"{START}\n{section}\n{END}"
        if START in text and END in text:
            before = text.split(START)[0]
            after = text.split(END, 1)[1]
            text = before + block + after
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        with open(a.write, "w") as f:
            f.write(text)
        print(f"\n(written into {a.write})")


if __name__ == "__main__":
    main()
