//! `Step::ProbeWrites`: after the DNS change, the application's view of the failover. The writer CNAME
//! is resolved as the application resolves it until it answers the promoted cluster's endpoint; the
//! address it gives is connected to with TLS verified against that endpoint (RDS certificates name the
//! endpoints, not the application's CNAME), and the server must take writes (its read-only flag, and
//! the heartbeat row when `[clusters.probe] heartbeat_table` is set). Every outcome seen is said in the
//! thread; the step ends with how long after the DNS change writes became possible through the name.
//! A probe that keeps failing until `probe.deadline_secs`, or whose credentials are refused, stops the
//! run for a person (`needs attention`); nothing is ever undone.

use super::{Ctx, DatabaseCheck, Runner, Step, Stop, plus, since};
use crate::ports::{Heartbeat, ProbeReport, ProbeTarget};
use crate::settings::ClusterProbe;
use crate::types::same_host;
use std::net::IpAddr;
use std::time::Duration;

/// How long one attempt (resolve, connect, statements) may take at most, whatever the adapter's own
/// timeouts say.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// What one attempt found when it did not give a writable connection.
struct Miss {
    /// What was seen, for the thread.
    seen: String,
    /// The probe's credentials were refused or unreadable: trying again does not help.
    configuration: bool,
}

impl Miss {
    fn seen(seen: String) -> Miss {
        Miss {
            seen,
            configuration: false,
        }
    }
}

/// Where the probe connects: the promoted cluster's endpoint (the TLS name) and port.
struct Aim<'a> {
    name: &'a str,
    endpoint: &'a str,
    port: u16,
    probe: &'a ClusterProbe,
}

impl Runner {
    /// Resolves the writer CNAME until it answers the target's cluster endpoint, connects through it
    /// and confirms writes, at the poll interval, until `probe.deadline_secs` from the step's start.
    pub(super) async fn probe_writes(
        &self,
        ctx: &mut Ctx,
        step: Step,
        started: jiff::Timestamp,
        read_deadline: jiff::Timestamp,
    ) -> Result<String, Stop> {
        let (Some(probe), Some(check)) = (ctx.plan.probe.clone(), self.database.clone()) else {
            return Ok("Skipped: the bot's configuration no longer has [probe].".to_owned());
        };
        let deadline = plus(started, check.deadline);
        if started < ctx.resumed_at && self.clock.now() >= deadline {
            return Err(Stop::Deadline(format!(
                "the probe's {} s deadline passed while the bot was not running. {}",
                check.deadline.as_secs(),
                self.probe_guidance(ctx)
            )));
        }
        let state = self.read_target(ctx, step, read_deadline).await?;
        let endpoint = state
            .endpoint
            .clone()
            .ok_or_else(|| Stop::Refused(format!("{} has no cluster endpoint to probe", state.cluster_id)))?;
        let name = ctx.plan.writer_record.clone();
        let aim = Aim {
            name: &name,
            endpoint: &endpoint,
            port: state.port.unwrap_or(probe.engine.default_port()),
            probe: &probe,
        };
        if ctx.data.probe_attempts.is_empty() {
            // What the previous step observed is not what this one looks at.
            ctx.data.last_seen = None;
        }
        loop {
            self.ensure_open(ctx).await?;
            let miss = match self.attempt(&check, &aim).await {
                Ok((ip, report)) => {
                    count_attempt(&mut ctx.data.probe_attempts, "writable".to_owned());
                    ctx.data.writable_after_ms = self.since_flip(ctx).map(super::ms);
                    return Ok(self.writable(ctx, &aim, ip, &report));
                }
                Err(miss) => miss,
            };
            count_attempt(&mut ctx.data.probe_attempts, miss.seen.clone());
            self.observe(ctx, step, &name, miss.seen.clone()).await?;
            self.persist(ctx, step, None).await?;
            if miss.configuration || self.clock.now() >= deadline {
                // What the watch of a run that needs attention observes is another matter.
                ctx.data.last_seen = None;
            }
            if miss.configuration {
                return Err(Stop::Refused(format!(
                    "the database probe's credentials do not work ({}): fix the secret {} or [clusters.probe], \
                     then /aurora resume to probe again. {}",
                    miss.seen,
                    probe.secret_id,
                    self.probe_guidance(ctx)
                )));
            }
            if self.clock.now() >= deadline {
                return Err(Stop::Deadline(format!(
                    "{name} gave no writable connection within {} s (probe.deadline_secs). Tried: {}. {}",
                    check.deadline.as_secs(),
                    attempts_text(&ctx.data.probe_attempts),
                    self.probe_guidance(ctx)
                )));
            }
            self.pause(ctx, self.settings.poll_interval).await?;
        }
    }

    /// One attempt: resolve the name, then connect to the address it gives, as the application would.
    async fn attempt(&self, check: &DatabaseCheck, aim: &Aim<'_>) -> Result<(IpAddr, ProbeReport), Miss> {
        let resolved = match tokio::time::timeout(ATTEMPT_TIMEOUT, check.probe.resolve(aim.name)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(Miss::seen(format!("does not resolve: {e}"))),
            Err(_) => return Err(Miss::seen("does not resolve: no answer in time".to_owned())),
        };
        if !resolved.cnames.iter().any(|c| same_host(c, aim.endpoint)) {
            let answer = resolved.cnames.first().map_or_else(
                || format!("no CNAME ({} addresses)", resolved.addresses.len()),
                |first| format!("answers {first}"),
            );
            return Err(Miss::seen(format!("{answer}, not {} yet", aim.endpoint)));
        }
        let Some(ip) = resolved.addresses.first().copied() else {
            return Err(Miss::seen(format!("answers {} but no address", aim.endpoint)));
        };
        let target = ProbeTarget {
            engine: aim.probe.engine,
            endpoint: aim.endpoint.to_owned(),
            address: Some(ip),
            port: aim.port,
            database: aim.probe.database.clone(),
            secret_id: aim.probe.secret_id.clone(),
            secret_region: aim.probe.secret_region.clone(),
            heartbeat: aim.probe.heartbeat_table.clone().map(|table| Heartbeat {
                table,
                writer: check.instance.clone(),
            }),
            check_heartbeat: None,
        };
        let at = format!("{}:{} ({})", aim.endpoint, aim.port, ip);
        match tokio::time::timeout(ATTEMPT_TIMEOUT, check.probe.probe(&target)).await {
            Err(_) => Err(Miss::seen(format!("{at}: no answer in time"))),
            Ok(Err(e)) => Err(Miss {
                seen: format!("{at}: {e}"),
                configuration: e.is_configuration(),
            }),
            Ok(Ok(r)) if r.read_only => Err(Miss::seen(format!("{at}: the server is read-only"))),
            Ok(Ok(r)) if target.heartbeat.is_some() && !r.heartbeat_written => {
                Err(Miss::seen(format!("{at}: the heartbeat row was not written")))
            }
            Ok(Ok(r)) => Ok((ip, r)),
        }
    }

    /// The step's result once a writable connection was made through the name.
    fn writable(&self, ctx: &Ctx, aim: &Aim<'_>, ip: IpAddr, report: &ProbeReport) -> String {
        let after = ctx.data.writable_after_ms.map(Duration::from_millis);
        let heartbeat = match &aim.probe.heartbeat_table {
            Some(t) => format!(", heartbeat row written to {t}"),
            None => String::new(),
        };
        let when = match after {
            Some(d) => format!("Writes possible through the CNAME {} after the flip", seconds(d)),
            None => "Writes possible through the CNAME".to_owned(),
        };
        format!(
            "{when}: {} → {} ({ip}), {} is writable{heartbeat}. Attempts: {}.",
            aim.name,
            aim.endpoint,
            short_version(&report.server_version),
            attempts_text(&ctx.data.probe_attempts)
        )
    }

    /// How long since the DNS change (`None` when the run did not record it).
    fn since_flip(&self, ctx: &Ctx) -> Option<Duration> {
        let flip = jiff::Timestamp::from_millisecond(ctx.data.dns_changed_ms?).ok()?;
        Some(since(self.clock.now(), flip))
    }

    /// What a person should know when the probe stops the run: the failover itself is done.
    fn probe_guidance(&self, ctx: &Ctx) -> String {
        format!(
            "The failover itself is complete ({} is the writer and the CNAMEs point at it); nothing will be undone. \
             Check the application's path to the database (security groups, parameter group, TLS), then /aurora \
             resume to probe again, or /aurora abandon",
            ctx.plan.to.cluster_id
        )
    }
}

/// Adds one attempt's outcome, counting it with the previous one when they are the same.
fn count_attempt(attempts: &mut Vec<(String, u32)>, outcome: String) {
    match attempts.last_mut() {
        Some((last, n)) if *last == outcome => *n += 1,
        _ => attempts.push((outcome, 1)),
    }
}

/// `2× answers old.example, not new.example yet; then writable`.
fn attempts_text(attempts: &[(String, u32)]) -> String {
    let total: u32 = attempts.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = attempts
        .iter()
        .map(|(outcome, n)| match n {
            1 => outcome.clone(),
            n => format!("{n}× {outcome}"),
        })
        .collect();
    format!("{total} ({})", parts.join("; then "))
}

/// `0.4 s`, `14 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// A server's version string cut to its first part (`PostgreSQL 15.4 (Debian …) on x86_64…` →
/// `PostgreSQL 15.4`; MySQL's `8.0.39` kept as it is).
pub(super) fn short_version(v: &str) -> &str {
    let v = v.split(" on ").next().unwrap_or(v);
    match v.find(" (") {
        Some(i) => &v[..i],
        None => v,
    }
    .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_in_runs_of_the_same_outcome() {
        let mut a = Vec::new();
        for o in ["old", "old", "read-only", "writable"] {
            count_attempt(&mut a, o.to_owned());
        }
        assert_eq!(attempts_text(&a), "4 (2× old; then read-only; then writable)");
    }

    #[test]
    fn versions_are_cut_to_their_first_part() {
        assert_eq!(
            short_version("PostgreSQL 15.4 (Debian 15.4-1) on x86_64-pc-linux-gnu, compiled by gcc"),
            "PostgreSQL 15.4"
        );
        assert_eq!(short_version("10.11.6-MariaDB-0+deb12u1"), "10.11.6-MariaDB-0+deb12u1");
        assert_eq!(seconds(Duration::from_millis(420)), "0.4 s");
        assert_eq!(seconds(Duration::from_secs(14)), "14 s");
    }
}
