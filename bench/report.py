"""Turns scripts/bench's results into the sections of BENCHMARKS.md.

Reads, from --dir (scripts/bench's results directory): ack.jsonl, replay.jsonl, clicks.jsonl (crates/loadgen's
JSON lines), clicks-setup.txt and replay-rows.txt (what the setup saw), fanout.txt (examples/bench_status's
output), and from --target the criterion estimates (target/criterion/*/new/). Prints the sections; with
--write FILE, replaces each section between its markers in FILE (or appends it when the markers are
missing). A part that was not run (BENCH_PARTS) leaves its section as it was.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics

ACK_SIDES = ["this bot, AWS refused", "Bolt, ack only", "this bot, awsim", "Bolt, ack + survey"]
# (the bot, the Bolt app it is compared with): like for like.
PAIRS = [("this bot, AWS refused", "Bolt, ack only"), ("this bot, awsim", "Bolt, ack + survey")]


def markers(name):
    return f"<!-- {name}:start (written by scripts/bench) -->", f"<!-- {name}:end -->"


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, med, hi = min(values), statistics.median(values), max(values)
    if len(values) == 1 or fmt(lo) == fmt(hi):
        return fmt(med)
    return f"{fmt(lo)} / {fmt(med)} / {fmt(hi)}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def num(v):
    return f"{v:,.0f}"


def ms(v):
    return f"{v:,.2f}" if v < 10 else f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


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


def read_jsonl(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_text(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def group(rows):
    by = {}
    for r in rows:
        by.setdefault((r["label"], r["offered_per_s"]), []).append(r)
    return by


def failed(rs):
    return sum(r["non_200"] + r["errors"] + r["timeouts"] for r in rs)


def cpu_per_k(r):
    return r["cpu_target_s"] * 1000 / r["ok"] if r["cpu_target_s"] is not None and r["ok"] else None


def load_table(rows, sides, rates):
    """The per-rate table of loadgen's results: one row per rate and side."""
    by = group(rows)
    out = [
        "| offered/s | side | achieved/s | failed | p50 ms | p99 ms | max ms | peak RSS MiB | CPU s per 1,000 | loadgen CPU s |",
        "|---:|---|" + "---:|" * 8,
    ]
    for rate in rates:
        for side in sides:
            rs = by.get((side, rate), [])
            if not rs:
                continue
            hwm = [r["hwm_mib"] for r in rs if r["hwm_mib"] is not None]
            out.append(
                f"| {rate:,} | {side} | {spread([r['achieved_per_s'] for r in rs], num)} | {failed(rs):,} | "
                f"{spread([r['p50_ms'] for r in rs], ms)} | {spread([r['p99_ms'] for r in rs], ms)} | "
                f"{spread([r['max_ms'] for r in rs], ms)} | {num(max(hwm)) if hwm else '-'} | "
                f"{spread([cpu_per_k(r) for r in rs], lambda v: f'{v:.2f}')} | "
                f"{spread([r['cpu_loadgen_s'] for r in rs], secs)} |"
            )
    return out


def idle_and_sustained(rows, sides, rates):
    by = group(rows)
    idle = {s: [r["rss_idle_mib"] for r in rows if r["label"] == s and r["rss_idle_mib"] is not None] for s in sides}
    sustained = {}
    for side in sides:
        for rate in rates:
            rs = by.get((side, rate), [])
            if rs and all(r["achieved_per_s"] >= 0.95 * rate and failed([r]) == 0 for r in rs):
                sustained[side] = rate
    return [
        "RSS before the first rate of each repetition (MiB): "
        + ", ".join(f"{s} {spread(idle[s], num)}" for s in sides if idle[s])
        + ".",
        "Highest offered rate sustained (in every repetition, 200s at no less than 95% of the offered rate, "
        "counted until the last answer, and none failed): "
        + ", ".join(f"{s} {sustained[s]:,}/s" if s in sustained else f"{s} none" for s in sides if idle[s])
        + ".",
    ]


def ratio(a, b, fmt="{:.2f}x"):
    return fmt.format(a / b) if a is not None and b else "-"


def ratio_table(rows, rates):
    """Medians of the bot over the Bolt app it is compared with, per rate."""
    by = group(rows)
    out = [
        "| offered/s | pair | achieved (bot / Bolt) | p99 (Bolt / bot) | CPU per 1,000 (Bolt / bot) |",
        "|---:|---|---:|---:|---:|",
    ]
    for rate in rates:
        for bot, bolt in PAIRS:
            b, p = by.get((bot, rate)), by.get((bolt, rate))
            if not b or not p:
                continue
            med = lambda rs, f: median([f(r) for r in rs])  # noqa: E731
            out.append(
                f"| {rate:,} | {bot} vs {bolt} | "
                f"{ratio(med(b, lambda r: r['achieved_per_s']), med(p, lambda r: r['achieved_per_s']))} | "
                f"{ratio(med(p, lambda r: r['p99_ms']), med(b, lambda r: r['p99_ms']))} | "
                f"{ratio(med(p, cpu_per_k), med(b, cpu_per_k))} |"
            )
    return out


def measured(a):
    return (
        f"**Measured** {datetime.date.today().isoformat()} on {machine()}, {a.bot_version}. Cells with several "
        "repetitions read min / median / max (one figure when they agree). Achieved = answered 200 per second; "
        "failed = non-200 answers, transport errors and timeouts over all repetitions; peak RSS = the highest "
        "VmHWM after a rate (summed over gunicorn's master and workers; the bot's since its start); CPU = the "
        "target's CPU seconds per 1,000 answers of 200; loadgen CPU = the load generator's own CPU seconds for "
        "the rate (it shares the 2 cores with the target)."
    )


def ack_section(a, rows):
    rates = [int(r) for r in a.rates.split(",")]
    out = ["## Acknowledging signed commands under load, side by side with Bolt for Python", ""]
    out.append(
        f"**Command:** `{a.command}`. Four targets, each a process on loopback, loaded one after the other "
        f"(alternating, {a.reps} repetitions) by `crates/loadgen`: each rate offered for {a.duration} s "
        "open-loop (requests sent on schedule whatever the answers, at most 1,024 in flight, latency counted "
        "from the scheduled send time so queueing is not hidden, a request unanswered 5 s after its scheduled "
        "time is a timeout), every request a distinct, correctly signed `/aurora status` command. Slack is the "
        "Slack stand-in run as a process (`slack-standin`, keeping nothing it receives), which takes every "
        "answer posted to a response_url."
    )
    out.append("")
    out.append(
        "- **this bot, AWS refused**: the release bot as `serve`, one cluster, its AWS endpoint a closed port "
        "(the status read behind each command fails at once, as issue 13's reference measurement did).\n"
        "- **Bolt, ack only** (`bench/bolt/ack_only.py`): acknowledges `/aurora` and does nothing else.\n"
        f"- **this bot, awsim**: the same bot against the AWS emulator (`awsim` binary, the two-Region "
        f"example scenario), every read the status survey makes (DescribeGlobalClusters, DescribeDBClusters, "
        f"GetMetricData, ListResourceRecordSets) held {a.aws_delay_ms} ms by the emulator, as a real call "
        "takes tens of milliseconds.\n"
        "- **Bolt, ack + survey** (`bench/bolt/status_survey.py`): acknowledges, then as a lazy listener "
        "(Bolt's `lazy=[...]`) makes the same reads with boto3 against the same emulator, one after the "
        "other (DescribeGlobalClusters; DescribeDBClusters of each member in its Region; GetMetricData of the "
        "secondary's lag; ListResourceRecordSets of the two CNAMEs), and posts the answer to the "
        "response_url. One difference remains: boto3 (1.44) sends CloudWatch's GetMetricData as JSON 1.0, "
        "which awsim does not speak (it speaks RPC v2 CBOR, what the Rust SDK sends), so the app's lag read "
        "fails at once without the delay and its answer shows the lag as unknown: the Bolt app makes five "
        "delayed reads per survey where the bot makes six."
    )
    out.append("")
    out.append(
        "**Per request:** the bot verifies the signature, records it in its replay table (one indexed "
        "`INSERT`), answers 200, then in the background reads the status (at most 32 surveys at once; a "
        "command arriving while 32 are in progress shares a read made in the last second or is told the bot "
        "is busy) and posts the answer straight to the response_url (a status answer records nothing: no store "
        "write, retried on a 429 or 5xx). The Bolt "
        "apps verify the signature and timestamp and answer 200; they keep no replay record; the survey app "
        "queues every survey on Bolt's lazy-listener thread pool with no bound. Both Bolt apps are served as "
        "Bolt's documentation recommends for production: `App.start()`'s built-in server is for development "
        "(its docstring: \"For production, consider using a production-ready WSGI server such as "
        f"Gunicorn\"), so the Flask adapter under gunicorn, {a.bolt_shape} ({a.bolt})."
    )
    out.append("")
    out.append(measured(a))
    out.append("")
    out += load_table(rows, ACK_SIDES, rates)
    out.append("")
    out += idle_and_sustained(rows, ACK_SIDES, rates)
    out.append("")
    out.append("Ratios (medians over the repetitions; above 1 the bot is ahead):")
    out.append("")
    out += ratio_table(rows, rates)
    return "\n".join(out)


def replay_section(a, rows, rows_after):
    rates = [int(r) for r in a.replay_rates.split(",")]
    sides = ["empty replay table", f"{a.replay_rows} rows"]
    by = group(rows)
    out = ["## Acknowledgement throughput with 0 and 100,000 rows in the replay table", ""]
    rows_n = f"{int(a.replay_rows):,}"
    out.append(
        f"**Command:** `{a.command}` (BENCH_REPLAY_RATES={a.replay_rates}, BENCH_REPLAY_ROWS={a.replay_rows}). "
        "Two release bots as `serve`, configured alike (one cluster, AWS refused, as the first pair above): "
        "one on a fresh store, one on a store whose replay table (`seen_requests`) was filled by "
        f"`bench/fill_replay.py` with {int(a.replay_rows):,} distinct signatures after the bot had created "
        "its schema (the bot stopped meanwhile, then started again). The rows are stamped over the two hours "
        "after the fill, so the pruning task (every 30 s, rows older than the replay window) leaves them in "
        "place for the whole run"
        + (f"; the table held {int(rows_after):,} rows at the end" if rows_after else "")
        + f". The same load as above (signed `/aurora status` commands, {a.duration} s per rate), the two "
        f"bots alternating, {a.reps} repetitions. The fresh bot's table grows with its own load (what it "
        "received in the last window). (`examples/bench_ack.rs`, the in-process debug-build version of this "
        "measurement, is no longer run by the script; it stays as an example.)"
    )
    out.append("")
    out.append(measured(a))
    out.append("")
    out += load_table(rows, sides, rates)
    out.append("")
    out.append(f"| offered/s | achieved, {rows_n} rows / empty | p99, empty / {rows_n} rows |")
    out.append("|---:|---:|---:|")
    for rate in rates:
        e, f = by.get((sides[0], rate)), by.get((sides[1], rate))
        if e and f:
            out.append(
                f"| {rate:,} | {ratio(median([r['achieved_per_s'] for r in f]), median([r['achieved_per_s'] for r in e]))} | "
                f"{ratio(median([r['p99_ms'] for r in e]), median([r['p99_ms'] for r in f]))} |"
            )
    return "\n".join(out)


def clicks_section(a, rows, setup):
    rates = [int(r) for r in a.click_rates.split(",")]
    per_rep = sum(rates) * int(a.click_duration)
    n = per_rep * int(a.reps)
    out = ["## Approve clicks on distinct pending requests (persisted decisions)", ""]
    out.append(
        f"**Command:** `{a.command}` (BENCH_CLICK_RATES={a.click_rates}, BENCH_CLICK_DURATION="
        f"{a.click_duration}). The AWS emulator (`awsim` binary) serves {n:,} two-Region global clusters "
        "(`bench/fleet.py`: awsim's fleet scenario) whose detach, managed failover and switchover each take "
        "an hour, and the release bot as `serve` is configured with the same clusters (`[runbook] "
        "poll_interval_ms = 60000`, the longest it takes). `crates/loadgen` first opens a request on each "
        "cluster with a signed `/aurora failover c{n}` from a requester; `bench/pending.py` waits, reading the "
        "bot's store read-only, until every request is `pending` with its approval message delivered to the "
        "Slack stand-in, and lists each request's id with that message's channel and `ts`. Then loadgen sends "
        "one signed `block_actions` interaction per request from an approver: the Approve button "
        "(`action_id` `approve`, `value` the request id, as `slack/render.rs` issues it) on that request's "
        f"own message, at constant offered rates for {a.click_duration} s each, {a.reps} repetitions, so that "
        "no click lands on a request decided before. Every approval starts a run; the runs stay waiting for "
        "the promotion for the whole measurement, polling once a minute."
    )
    out.append("")
    out.append(
        "**What the 200 includes:** the decision is made before the answer. The bot verifies the signature, "
        "records it in the replay table, reads the request and checks that the click is on the request's own "
        "approval message as delivered, checks the approver, then decides by compare-and-set in the store "
        "(the request `approved` and its run created in one durable commit), queues the update of the "
        "approval message and the answer to the clicker in the outbox, writes the audit line, and only then "
        "answers 200; the run itself (its AWS calls) is launched in the background."
    )
    out.append("")
    if setup:
        out.append("**Setup seen by the script:** " + "; ".join(setup.splitlines()) + ".")
        out.append("")
    out.append(measured(a))
    out.append("")
    out += load_table(rows, ["this bot, Approve"], rates)
    return "\n".join(out)


def fanout_section(a, text):
    out = [
        f"**Measured** {datetime.date.today().isoformat()} on {machine()}, {a.bot_version} "
        "(`cargo run --release --example bench_status`, run by `scripts/bench`):",
        "",
        "| clusters | median | vs 1 cluster |",
        "|---:|---:|---:|",
    ]
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\s+([\d.]+) ms\s+([\d.]+)x", line)
        if m:
            out.append(f"| {int(m[1])} | {float(m[2]):,.0f} ms | {float(m[3]):.2f}x |")
    return "\n".join(out)


def micro_section(a):
    found = []
    for est in sorted(glob.glob(os.path.join(a.target, "criterion", "**", "new", "estimates.json"), recursive=True)):
        bench = os.path.join(os.path.dirname(est), "benchmark.json")
        try:
            with open(est) as f:
                m = json.load(f)["median"]
            with open(bench) as f:
                name = json.load(f).get("full_id")
        except (OSError, KeyError, ValueError):
            continue
        found.append((name, m["point_estimate"], m["confidence_interval"]))
    if not found:
        return None
    out = [
        f"**Measured** {datetime.date.today().isoformat()} on {machine()}, {a.bot_version} "
        "(`cargo bench --bench slack`, run by `scripts/bench`; criterion's median, with its 95% confidence "
        "interval):",
        "",
        "| benchmark | median | 95% interval |",
        "|---|---:|---:|",
    ]

    def t(ns):
        if ns >= 1_000_000:
            return f"{ns / 1_000_000:,.2f} ms"
        return f"{ns / 1000:,.1f} µs" if ns >= 1000 else f"{ns:,.0f} ns"

    for name, med, ci in found:
        out.append(f"| {name} | {t(med)} | {t(ci['lower_bound'])} to {t(ci['upper_bound'])} |")
    return "\n".join(out)


def write(path, name, section):
    start, end = markers(name)
    with open(path) as f:
        text = f.read()
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        text = text.split(start)[0] + block + text.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser()
    for name in ("dir", "target", "rates", "duration", "reps", "parts", "aws-delay-ms", "replay-rates",
                 "replay-rows", "click-rates", "click-duration", "bot-version", "bolt", "bolt-shape", "command"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--write")
    a = p.parse_args()
    parts = set(a.parts.strip(",").split(","))

    sections = []
    if "micro" in parts:
        sections.append(("micro", micro_section(a)))
    if "fanout" in parts:
        text = read_text(os.path.join(a.dir, "fanout.txt"))
        sections.append(("fanout", fanout_section(a, text) if text else None))
    if "ack" in parts:
        rows = read_jsonl(os.path.join(a.dir, "ack.jsonl"))
        sections.append(("ack-load", ack_section(a, rows) if rows else None))
    if "replay" in parts:
        rows = read_jsonl(os.path.join(a.dir, "replay.jsonl"))
        after = read_text(os.path.join(a.dir, "replay-rows.txt"))
        sections.append(("replay-load", replay_section(a, rows, after) if rows else None))
    if "clicks" in parts:
        rows = read_jsonl(os.path.join(a.dir, "clicks.jsonl"))
        setup = read_text(os.path.join(a.dir, "clicks-setup.txt"))
        sections.append(("approve-load", clicks_section(a, rows, setup) if rows else None))

    for name, section in sections:
        if section is None:
            print(f"({name}: no results)")
            continue
        print(section)
        print()
        if a.write:
            write(a.write, name, section)
    if a.write:
        print(f"(written into {a.write})")


if __name__ == "__main__":
    main()
