//! `aurora-failover-bot audit`: every request, decision, attempt and run step, with Slack user ids and
//! times, from the store, as JSON lines or a table. Reads only.

use crate::store::{DecodeError, Request, RequestId, RequestState, Run, RunId, Store, StoreError};
use crate::types::human_duration;
use serde::Serialize;
use std::fmt::Write as _;

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// RFC 3339 with milliseconds, so that the lines sort as text too.
    #[serde(serialize_with = "millis")]
    pub at: jiff::Timestamp,
    /// `request`, `decision`, `expired`, `rejected`, `attempt`, `step`, `run`, `unreadable` (a stored
    /// row that cannot be read: shown, not hidden).
    pub kind: &'static str,
    pub request: Option<RequestId>,
    pub run: Option<RunId>,
    /// The Slack user id of who did it, when a person did.
    pub user: Option<String>,
    pub what: String,
    pub detail: String,
}

fn millis<S: serde::Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Table,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jsonl" => Some(Format::Jsonl),
            "table" => Some(Format::Table),
            _ => None,
        }
    }
}

/// Parses `--since`: an RFC 3339 time (`2026-11-26T09:00:00Z`), a date (`2026-11-26`, midnight UTC), or
/// a span back from `now` (`90m`, `24h`, `7d`).
pub fn parse_since(s: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    let s = s.trim();
    if s.contains(':') || s.contains('T') {
        return s.parse::<jiff::Timestamp>().map_err(|e| {
            if s.parse::<jiff::civil::DateTime>().is_ok() {
                format!("{s:?} has no UTC offset: add one, such as {s}Z")
            } else {
                format!("{s:?} is not a time such as 2026-11-26T09:00:00Z: {e}")
            }
        });
    }
    if s.len() >= 8 && s.starts_with(|c: char| c.is_ascii_digit()) && s.contains('-') {
        let date = s
            .parse::<jiff::civil::Date>()
            .map_err(|e| format!("{s:?} is not a date such as 2026-11-26: {e}"))?;
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| format!("{s:?}: {e}"));
    }
    since_span(s, now)
}

/// `24h` before `now` (units s, m, h, d).
fn since_span(s: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = match number.parse() {
        Ok(n) => n,
        Err(_) if number.is_empty() => {
            return Err(format!("{s:?} is not a time, a date or a span such as 24h"));
        }
        Err(_) => return Err(format!("{s:?} is too long a span")),
    };
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => return Err(format!("{s:?} needs a unit: s, m, h or d (such as 24h)")),
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(unit_secs)
        .and_then(|secs| now.checked_sub(jiff::SignedDuration::from_secs(secs)).ok())
        .ok_or_else(|| format!("{s:?} reaches back further than a timestamp can"))
}

/// A stored row that cannot be read, as a line of the trail (of request `request`, if known).
fn unreadable_entry(e: DecodeError, request: Option<RequestId>) -> Entry {
    Entry {
        at: jiff::Timestamp::UNIX_EPOCH,
        kind: "unreadable",
        request: request.or_else(|| (e.table == "requests").then(|| e.key.parse().ok()).flatten()),
        run: (e.table == "runs").then(|| e.key.parse().ok()).flatten(),
        user: None,
        what: format!("stored {} row {} cannot be read", e.table, e.key),
        detail: e.reason,
    }
}

/// Every entry since `since`, oldest first; rows that cannot be read come first, whatever `since`.
pub async fn entries(store: &dyn Store, since: jiff::Timestamp) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    let mut runs_to_requests = std::collections::HashMap::new();
    for r in store.requests_since(jiff::Timestamp::MIN).await? {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                unreadable.push(unreadable_entry(e, None));
                continue;
            }
        };
        out.extend(request_entries(&r));
        let run = match store.run_of_request(r.id).await {
            Ok(run) => run,
            Err(StoreError::Decode(e)) => {
                unreadable.push(unreadable_entry(e, Some(r.id)));
                None
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(run) = run {
            runs_to_requests.insert(run.id, r.id);
            out.extend(run_entry(r.id, &run));
        }
    }
    for a in store.audit_since(since).await? {
        out.push(Entry {
            at: a.at,
            kind: "attempt",
            request: a.request_id,
            run: None,
            user: Some(a.user),
            what: a.action,
            detail: a.outcome,
        });
    }
    for j in store.journal_since(since).await? {
        out.push(Entry {
            at: j.at,
            kind: "step",
            request: runs_to_requests.get(&j.run_id).copied(),
            run: Some(j.run_id),
            user: None,
            what: format!("{} {}", j.step, j.event),
            detail: j.detail,
        });
    }
    out.retain(|e| e.at >= since);
    out.sort_by_key(|e| e.at);
    unreadable.extend(out);
    Ok(unreadable)
}

/// The request line's detail: its state now, and its reason and ticket if it gave them.
fn request_detail(r: &Request) -> String {
    let mut d = format!("now {}", r.state.as_str());
    if let Some(reason) = &r.reason {
        d.push_str(&format!("; reason: {reason}"));
    }
    if let Some(t) = &r.ticket {
        d.push_str(&format!("; ticket: {t}"));
    }
    d
}

/// A request's own lines: asked, approvals counted, decided, expired or rejected.
fn request_entries(r: &Request) -> Vec<Entry> {
    let entry = |at, kind, user: Option<&dyn std::fmt::Display>, what: String, detail: String| Entry {
        at,
        kind,
        request: Some(r.id),
        run: None,
        user: user.map(|u| u.to_string()),
        what,
        detail,
    };
    let target = r.to_region.as_ref().map(|t| format!(" --to {t}")).unwrap_or_default();
    let plan = r.stored_plan::<crate::runbook::plan::Plan>().ok().flatten();
    let mode = crate::runbook::plan::mode_record(r.mode, plan.as_ref());
    let mut out = vec![entry(
        r.requested_at,
        "request",
        Some(&r.requested_by as &dyn std::fmt::Display),
        format!("failover {}{target} --mode {mode}", r.cluster),
        request_detail(r),
    )];
    // Each approval counted before the one that decided (a policy asking for several approvers).
    for a in r
        .approvals
        .iter()
        .filter(|a| !(r.state == RequestState::Approved && r.decided_by.as_ref() == Some(&a.by)))
    {
        out.push(entry(
            a.at,
            "approval",
            Some(&a.by as &dyn std::fmt::Display),
            "approval counted".into(),
            String::new(),
        ));
    }
    if let (Some(by), Some(at)) = (&r.decided_by, r.decided_at) {
        out.push(entry(
            at,
            "decision",
            Some(by as &dyn std::fmt::Display),
            r.state.as_str().to_owned(),
            String::new(),
        ));
    }
    match r.state {
        RequestState::Expired => out.push(entry(
            r.expires_at,
            "expired",
            None,
            match r.approvals.len() {
                0 => "expired without a decision".into(),
                n => format!("expired with {n} approval(s), not enough"),
            },
            String::new(),
        )),
        RequestState::Rejected => out.push(entry(
            r.requested_at,
            "rejected",
            None,
            "not posted for approval".into(),
            r.note.clone().unwrap_or_default(),
        )),
        _ => {}
    }
    out
}

/// A finished run's line: how it ended and how long it took.
fn run_entry(request: RequestId, run: &Run) -> Option<Entry> {
    let finished = run.finished_at?;
    Some(Entry {
        at: finished,
        kind: "run",
        request: Some(request),
        run: Some(run.id),
        user: None,
        what: run.state.as_str().to_owned(),
        detail: format!(
            "took {}",
            human_duration(finished.duration_since(run.started_at).unsigned_abs())
        ),
    })
}

/// Renders entries in a format.
pub fn render(entries: &[Entry], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Jsonl => {
            for e in entries {
                let _ = writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default());
            }
        }
        Format::Table => {
            let _ = writeln!(
                out,
                "{:<24} {:>7} {:>5} {:<10} {:<10} {:<32} DETAIL",
                "TIME (UTC)", "REQUEST", "RUN", "KIND", "USER", "WHAT"
            );
            for e in entries {
                let _ = writeln!(
                    out,
                    "{:<24} {:>7} {:>5} {:<10} {:<10} {:<32} {}",
                    e.at.strftime("%Y-%m-%d %H:%M:%S%.3f"),
                    e.request.map(|r| format!("#{r}")).unwrap_or_default(),
                    e.run.map(|r| r.to_string()).unwrap_or_default(),
                    e.kind,
                    e.user.as_deref().unwrap_or("-"),
                    e.what,
                    e.detail.replace('\n', " ")
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_dates_and_spans() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("2026-11-26T09:30:00Z", now).unwrap(),
            "2026-11-26T09:30:00Z".parse().unwrap()
        );
        assert_eq!(
            parse_since("2026-11-25", now).unwrap(),
            "2026-11-25T00:00:00Z".parse().unwrap()
        );
        assert_eq!(
            parse_since("90m", now).unwrap(),
            "2026-11-26T10:30:00Z".parse().unwrap()
        );
        assert_eq!(parse_since("2d", now).unwrap(), "2026-11-24T12:00:00Z".parse().unwrap());
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("3w", now).is_err());
    }

    #[test]
    fn since_refuses_what_it_would_misread_saying_why() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let why = |s: &str| parse_since(s, now).unwrap_err();
        assert!(why("2026-12-01T05:48:20").contains("has no UTC offset: add one, such as 2026-12-01T05:48:20Z"));
        assert!(why("2026-13-45").contains("is not a date"), "{}", why("2026-13-45"));
        assert!(why("2026-02-30").contains("is not a date"));
        assert!(why("24").contains("needs a unit"));
        assert!(why("-5h").contains("is not a time, a date or a span"));
        assert!(why("99999999999d").contains("reaches back further"));
        assert!(why("99999999999999999999d").contains("too long"));
    }
}
