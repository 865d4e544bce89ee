//! Words for a terminal: the same typed values `slack/render.rs` turns into Slack markup, as plain text
//! (no mrkdwn, no emoji, no Block Kit), one fact per line. `status --config` prints the `/aurora status`
//! view with it, and `check-config` its report. Pure functions of their arguments.

use crate::checkconfig::Report;
use crate::runbook::plan::{Check, Outcome, lag_text};
use crate::status::{ClusterReport, CnameCheck, Detached, GlobalEndpoint, MemberReport, Next, same_host};
use crate::store::GlobalClusterRecord;

/// The `/aurora status` view of `reports`, one block of lines per cluster, blocks separated by an
/// empty line; ends with a newline.
pub fn status(reports: &[ClusterReport]) -> String {
    let blocks: Vec<String> = reports.iter().map(|r| cluster_status(r).join("\n")).collect();
    format!("{}\n", blocks.join("\n\n"))
}

/// One cluster: its name, any operation in progress or detached writer, its members (Region, role,
/// state, lag, endpoints), the global writer endpoint, the CNAMEs against the writer, and the DNS
/// records check when it did not pass.
fn cluster_status(r: &ClusterReport) -> Vec<String> {
    let mut lines = vec![format!("{} (global cluster {})", r.name, r.global_cluster_id)];
    lines.extend(r.follows.iter().map(|f| follows_line(&r.name, f)));
    match &r.topology {
        Err(e) => lines.push(format!("  WARNING cannot read the global cluster: {e}")),
        Ok(t) => {
            if let Some(op) = &t.operation_in_progress {
                lines.push(format!("  managed operation in progress: {op}"));
            }
            if let Some(d) = &r.detached {
                lines.extend(detached_lines(r, d));
            }
            for m in &r.members {
                let role = if m.member.is_writer { "writer" } else { "reader" };
                lines.push(format!(
                    "  {} {} {role}: {}",
                    m.member.region,
                    m.member.cluster_id,
                    member_detail(m, m.member.is_writer)
                ));
            }
        }
    }
    if let Some(g) = &r.global_endpoint {
        lines.push(global_endpoint_line(g));
    }
    for (label, check) in [("writer", &r.writer_cname), ("reader", &r.reader_cname)] {
        lines.push(cname_line(label, check));
    }
    if let Some(c) = r.records.as_ref().filter(|c| c.outcome != Outcome::Pass) {
        lines.push(format!("  {} {}: {}", tag(c.outcome), c.name, c.detail));
    }
    lines.extend(r.next.iter().map(|n| next_line(&r.name, n)));
    lines
}

/// The global cluster a cluster follows instead of the config's, and the config change that makes it
/// permanent.
fn follows_line(cluster: &str, f: &GlobalClusterRecord) -> String {
    format!(
        "  follows global cluster {} (made by rebuild request #{}, {}) while the config names {}: set \
         global_cluster_id = \"{}\" in {cluster}' [[clusters]] entry to make it permanent (the record is then dropped \
         at start-up)",
        f.global_cluster_id,
        f.request,
        f.recorded_at.strftime("%Y-%m-%d %H:%M UTC"),
        f.replaces,
        f.global_cluster_id
    )
}

/// What to do next with a cluster: fail back with a switchover, now or once the old primary is back.
fn next_line(cluster: &str, next: &Next) -> String {
    let b = match next {
        Next::SwitchBack(b) => b,
        Next::Rebuild { region } => {
            return format!(
                "  next    Nothing replicates it since the detach. Once {region} is healthy: /aurora rebuild {cluster} --in {region}"
            );
        }
    };
    let old = &b.old_primary;
    let offer = format!(
        "Fail back to {} with a switchover (no data loss): /aurora failover {cluster} --to {} --mode switchover",
        old.region, old.region
    );
    if b.ready() {
        return format!("  next    {offer}");
    }
    let status = match &b.status {
        Ok(s) => s.clone(),
        Err(e) => format!("cannot be read: {e}"),
    };
    let sync = match &b.old_primary.sync {
        Some(sync) => format!("sync {sync}"),
        None => "no sync status".to_owned(),
    };
    format!(
        "  later   {offer} once {} is back as an available, connected secondary (now: {status}, {sync})",
        old.cluster_id
    )
}

/// A member's state: status, writer instance, engine, lag, sync, write forwarding, endpoints.
fn member_detail(m: &MemberReport, should_write: bool) -> String {
    let c = match &m.state {
        Ok(c) => c,
        Err(e) => return format!("WARNING cannot read: {e}"),
    };
    let mut parts = vec![c.status.clone()];
    if should_write && !c.has_writer {
        parts[0].push_str(" (no writer instance!)");
    }
    parts.push(format!("engine {}", c.engine_version));
    if let Some(l) = m.lag_ms {
        parts.push(format!("lag {}", lag_text(l)));
    }
    if let Some(s) = m.member.sync.as_deref().filter(|s| *s != "connected") {
        parts.push(format!("sync {s}"));
    }
    if let Some(f) = c
        .write_forwarding
        .as_deref()
        .filter(|f| !m.member.is_writer && *f != "disabled")
    {
        parts.push(format!("write forwarding {f}"));
    }
    parts.push(format!("endpoint {}", c.endpoint.as_deref().unwrap_or("-")));
    parts.push(format!("reader {}", c.reader_endpoint.as_deref().unwrap_or("-")));
    parts.join(" | ")
}

/// The standalone writer a detach left, and a warning if the global cluster still has a writer.
fn detached_lines(r: &ClusterReport, d: &Detached) -> Vec<String> {
    let m = &d.report.member;
    let mut lines = vec![format!(
        "  {} {} standalone writer, detached from the global cluster by request #{}: {}",
        m.region,
        m.cluster_id,
        d.request_id,
        member_detail(&d.report, true)
    )];
    if let Some(w) = r.members.iter().find(|m| m.member.is_writer) {
        lines.push(format!(
            "  WARNING {} ({}) is still the writer of the global cluster and may still accept writes: fence it until \
             the global database is rebuilt",
            w.member.cluster_id, w.member.region
        ));
    }
    lines
}

/// The global writer endpoint and the cluster it serves now (the writer member, from the API).
fn global_endpoint_line(g: &GlobalEndpoint) -> String {
    match &g.serves {
        Some(m) => format!(
            "  global writer endpoint {} -> serves {} ({}), the writer",
            g.endpoint, m.cluster_id, m.region
        ),
        None => format!(
            "  WARNING global writer endpoint {} serves no cluster: the global cluster has no writer",
            g.endpoint
        ),
    }
}

/// Where a CNAME points, against the current writer's endpoint.
fn cname_line(label: &str, check: &CnameCheck) -> String {
    match check {
        CnameCheck::FollowsWriter { name, value, serves } => format!(
            "  ok      {label} CNAME {name} -> {value}: follows the writer (the global writer endpoint, now {})",
            serves.as_deref().unwrap_or("no writer")
        ),
        CnameCheck::Unreadable(e) => format!("  WARNING {label} CNAME: cannot read: {e}"),
        CnameCheck::Missing { name } => format!("  MISSING {label} CNAME {name} does not exist"),
        CnameCheck::Points { name, value, expected } => match expected {
            Some(exp) if same_host(value, exp) => {
                format!("  ok      {label} CNAME {name} -> {value} (the current writer's {label} endpoint)")
            }
            Some(exp) => {
                format!("  WARNING {label} CNAME {name} -> {value}, NOT the current writer's {label} endpoint {exp}")
            }
            None => format!("  ?       {label} CNAME {name} -> {value} (the writer's endpoint is unknown)"),
        },
    }
}

/// `ok  `, `warn` or `FAIL`: the first word of a check's line, padded to one width.
fn tag(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "ok  ",
        Outcome::Warn => "warn",
        Outcome::Fail => "FAIL",
    }
}

/// `check-config`'s report: a heading per group, then one line per check (`ok   NAME: DETAIL`,
/// `warn NAME: DETAIL`, `FAIL NAME: REASON`), then a count; ends with a newline.
pub fn check_report(report: &Report) -> String {
    let mut out = String::new();
    for g in &report.groups {
        out.push_str(&format!("{}\n", g.title));
        for c in &g.checks {
            out.push_str(&check_line(c));
        }
        out.push('\n');
    }
    let count = |o: Outcome| report.checks().filter(|c| c.outcome == o).count();
    let (ok, warned, failed) = (count(Outcome::Pass), count(Outcome::Warn), count(Outcome::Fail));
    out.push_str(&format!("{ok} ok, {warned} warning(s), {failed} failed\n"));
    out
}

fn check_line(c: &Check) -> String {
    format!("{} {}: {}\n", tag(c.outcome), c.name, c.detail)
}

/// Writes `text` to stdout and returns `code`; a reader that stops early (`| head`) is not an error,
/// any other write error is (exit 1).
pub fn print(text: &str, code: std::process::ExitCode) -> std::process::ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("aurora-failover-bot: cannot write the output: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkconfig::Group;

    fn check(name: &str, outcome: Outcome, detail: &str) -> Check {
        Check {
            name: name.into(),
            outcome,
            detail: detail.into(),
        }
    }

    #[test]
    fn a_check_report_has_one_tagged_line_per_check_under_its_group_and_a_count() {
        let report = Report {
            groups: vec![
                Group {
                    title: "configuration".into(),
                    checks: vec![check("config file", Outcome::Pass, "bot.toml is valid")],
                },
                Group {
                    title: "cluster orders (global cluster orders-global)".into(),
                    checks: vec![
                        check("hosted zone", Outcome::Fail, "Z1 cannot be read: not found"),
                        check("replication lag in us-west-2", Outcome::Warn, "not known"),
                    ],
                },
            ],
        };
        assert_eq!(
            check_report(&report),
            "configuration\nok   config file: bot.toml is valid\n\n\
             cluster orders (global cluster orders-global)\nFAIL hosted zone: Z1 cannot be read: not found\n\
             warn replication lag in us-west-2: not known\n\n1 ok, 1 warning(s), 1 failed\n"
        );
        assert!(report.failed());
    }

    fn switch_back(status: &str, sync: &str) -> Next {
        Next::SwitchBack(crate::status::SwitchBack {
            request_id: crate::store::RequestId::new(7),
            after: crate::types::Mode::Switchover,
            old_primary: crate::ports::Member {
                region: crate::types::Region::parse("us-east-1").unwrap(),
                cluster_id: "orders-east".into(),
                arn: "arn:aws:rds:us-east-1:123456789012:cluster:orders-east".into(),
                is_writer: false,
                sync: Some(sync.into()),
            },
            status: Ok(status.into()),
        })
    }

    #[test]
    fn the_followed_global_cluster_and_the_switchover_back_are_said_plainly() {
        let record = GlobalClusterRecord {
            cluster: crate::types::ClusterName::parse("orders").unwrap(),
            global_cluster_id: "orders-global-2".into(),
            request: crate::store::RequestId::new(12),
            recorded_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            replaces: "orders-global".into(),
        };
        assert_eq!(
            follows_line("orders", &record),
            "  follows global cluster orders-global-2 (made by rebuild request #12, 2027-01-15 08:00 UTC) while the \
             config names orders-global: set global_cluster_id = \"orders-global-2\" in orders' [[clusters]] entry to \
             make it permanent (the record is then dropped at start-up)"
        );
        assert_eq!(
            next_line("orders", &switch_back("available", "connected")),
            "  next    Fail back to us-east-1 with a switchover (no data loss): /aurora failover orders --to us-east-1 \
             --mode switchover"
        );
        assert_eq!(
            next_line("orders", &switch_back("modifying", "pending-resync")),
            "  later   Fail back to us-east-1 with a switchover (no data loss): /aurora failover orders --to us-east-1 \
             --mode switchover once orders-east is back as an available, connected secondary (now: modifying, sync \
             pending-resync)"
        );
    }

    #[test]
    fn a_cname_elsewhere_than_the_writer_is_said_plainly_without_slack_markup() {
        let line = cname_line(
            "writer",
            &CnameCheck::Points {
                name: "w.example.internal".into(),
                value: "west.cluster-1.us-west-2.rds.amazonaws.com".into(),
                expected: Some("east.cluster-1.us-east-1.rds.amazonaws.com".into()),
            },
        );
        assert_eq!(
            line,
            "  WARNING writer CNAME w.example.internal -> west.cluster-1.us-west-2.rds.amazonaws.com, NOT the \
             current writer's writer endpoint east.cluster-1.us-east-1.rds.amazonaws.com"
        );
        assert!(!line.contains('`') && !line.contains('*') && !line.contains(":warning:"));
    }
}
