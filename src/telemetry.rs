//! The bot's own Prometheus metrics, served on `GET /metrics` in the Prometheus text exposition format
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), encoded by the `prometheus-client`
//! crate. (Not to be confused with `ports::Metrics`, the CloudWatch replica lag the plan reads.)
//!
//! One [`Telemetry`] per `Application`, with its own registry: several bots in one process (the
//! integration tests) never mix their numbers. Every family is named `aurora_failover_bot_…`, counters
//! end in `_total`, durations are histograms in seconds.
//!
//! Invariants: every label value comes from a bounded set (a configured cluster name, a mode, a step
//! name, an AWS action the code names, an AWS error code checked by [`bounded_code`], a fixed outcome);
//! no message, ARN, user, channel or secret is ever a label. This module sits with the values (it
//! imports nothing of the bot), so the engine, the adapters and the HTTP layer may all record into it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The prefix of every family's name.
pub const PREFIX: &str = "aurora_failover_bot";

/// The `Content-Type` of [`Telemetry::encode`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Acknowledgement latency buckets, seconds: 5 ms to Slack's 3 s limit, and one past it.
const ACK_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0];

/// Step duration buckets, seconds: a read takes a second, a managed failover or a DNS sync minutes.
const STEP_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOutcome {
    route: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterModeOutcome {
    cluster: String,
    mode: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepMode {
    step: &'static str,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionCode {
    action: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodOutcome {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// The registry and every family in it. Shared as `Arc<Telemetry>`; recording is lock-free for a
/// label set seen before (a read lock on the family otherwise).
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    slack_requests: Family<RouteOutcome, Counter>,
    ack_seconds: HistogramFamily<Route>,
    requests: Family<ClusterModeOutcome, Counter>,
    runs: Family<ClusterModeOutcome, Counter>,
    runs_in_progress: Gauge,
    step_seconds: HistogramFamily<StepMode>,
    aws_errors: Family<ActionCode, Counter>,
    deliveries: Family<MethodOutcome, Counter>,
    delivery_retries: Family<Method, Counter>,
    outbox_depth: Gauge,
    store_commits: Counter,
    store_operations: Counter,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

fn ack_histogram() -> Histogram {
    Histogram::new(ACK_BUCKETS)
}

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

impl Telemetry {
    /// A fresh registry with every family registered (and no samples yet).
    pub fn new() -> Self {
        let mut t = Telemetry {
            registry: Registry::with_prefix(PREFIX),
            slack_requests: Family::default(),
            ack_seconds: Family::new_with_constructor(ack_histogram),
            requests: Family::default(),
            runs: Family::default(),
            runs_in_progress: Gauge::default(),
            step_seconds: Family::new_with_constructor(step_histogram),
            aws_errors: Family::default(),
            deliveries: Family::default(),
            delivery_retries: Family::default(),
            outbox_depth: Gauge::default(),
            store_commits: Counter::default(),
            store_operations: Counter::default(),
        };
        t.register();
        t
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "slack_requests",
            "Requests on the Slack routes (route: commands, interactions), by outcome (ok, bad_signature, stale, too_large, timeout, replay, foreign_workspace, bad_request, ssl_check)",
            self.slack_requests.clone(),
        );
        r.register(
            "slack_ack_seconds",
            "Time from a Slack request's arrival to its response, seconds (Slack's limit: 3)",
            self.ack_seconds.clone(),
        );
        r.register(
            "failover_requests",
            "Failover requests by cluster, mode (auto when none was asked and none planned) and outcome (requested, rejected, approved, break_glass (started from a terminal without a second approver), denied, expired, cancelled)",
            self.requests.clone(),
        );
        r.register(
            "runs",
            "Finished runs and spells of needing attention by cluster, mode and outcome (succeeded, failed, abandoned, needs_attention)",
            self.runs.clone(),
        );
        r.register(
            "runs_in_progress",
            "Runs this process is executing now",
            self.runs_in_progress.clone(),
        );
        r.register(
            "step_duration_seconds",
            "How long each runbook step took, by step and mode, seconds",
            self.step_seconds.clone(),
        );
        r.register(
            "aws_errors",
            "Failed AWS calls by action (e.g. rds:FailoverGlobalCluster) and code (AWS's error code, or unreachable, timeout, bad_response)",
            self.aws_errors.clone(),
        );
        r.register(
            "slack_deliveries",
            "Slack delivery attempts from the outbox by method and outcome (delivered, superseded, rate_limited, temporary, token_refused, unreadable, refused)",
            self.deliveries.clone(),
        );
        r.register(
            "slack_delivery_retries",
            "Slack deliveries scheduled for another attempt, by method",
            self.delivery_retries.clone(),
        );
        r.register(
            "outbox_depth",
            "Outbox items not delivered yet (read from the store at each scrape)",
            self.outbox_depth.clone(),
        );
        r.register(
            "store_commits",
            "Transactions the store committed (SQLite: the operations queued meanwhile share one; only one with a durable write waits for the disk)",
            self.store_commits.clone(),
        );
        r.register(
            "store_operations",
            "Operations the store ran (reads and writes; store_operations_total / store_commits_total is the group commit's batch size)",
            self.store_operations.clone(),
        );
    }

    /// The whole registry in the Prometheus text format, version 0.0.4 (what Prometheus scrapes by
    /// default; [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// A request on a Slack route (`commands`, `interactions`) was answered with `outcome` after
    /// `took`.
    pub fn slack_request(&self, route: &'static str, outcome: &'static str, took: Duration) {
        self.slack_requests
            .get_or_create(&RouteOutcome { route, outcome })
            .inc();
        self.ack_seconds
            .get_or_create(&Route { route })
            .observe(took.as_secs_f64());
    }

    /// Creates, at zero, the series alerts are written on (runs that failed or need attention, uses of
    /// break-glass, refused signatures) for each configured cluster, so that the first event after a
    /// start is an increase Prometheus sees rather than a new series.
    pub fn start_at_zero<'a>(&self, clusters: impl IntoIterator<Item = &'a str>) {
        const MODES: [&str; 3] = ["detach", "failover", "switchover"];
        for cluster in clusters {
            for mode in MODES {
                for outcome in ["succeeded", "failed", "abandoned", "needs_attention"] {
                    let labels = ClusterModeOutcome {
                        cluster: cluster.to_owned(),
                        mode,
                        outcome,
                    };
                    let _ = self.runs.get_or_create(&labels);
                }
                let labels = ClusterModeOutcome {
                    cluster: cluster.to_owned(),
                    mode,
                    outcome: "break_glass",
                };
                let _ = self.requests.get_or_create(&labels);
            }
        }
        for route in ["commands", "interactions"] {
            for outcome in ["bad_signature", "stale"] {
                let _ = self.slack_requests.get_or_create(&RouteOutcome { route, outcome });
            }
        }
        for method in ["chat.postMessage", "chat.update", "response_url"] {
            for outcome in ["token_refused", "refused"] {
                let _ = self.deliveries.get_or_create(&MethodOutcome { method, outcome });
            }
        }
    }

    /// A failover request for `cluster` (a configured name) in `mode` reached `outcome`.
    pub fn request(&self, cluster: &str, mode: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&ClusterModeOutcome {
                cluster: cluster.to_owned(),
                mode,
                outcome,
            })
            .inc();
    }

    /// A run of `cluster` in `mode` reached `outcome` (an end, or `needs_attention`).
    pub fn run(&self, cluster: &str, mode: &'static str, outcome: &'static str) {
        self.runs
            .get_or_create(&ClusterModeOutcome {
                cluster: cluster.to_owned(),
                mode,
                outcome,
            })
            .inc();
    }

    /// Counts a run as in progress until the guard is dropped.
    pub fn run_in_progress(&self) -> InProgress {
        self.runs_in_progress.inc();
        InProgress(self.runs_in_progress.clone())
    }

    /// Step `step` of a run in `mode` took `took`.
    pub fn step(&self, step: &'static str, mode: &'static str, took: Duration) {
        self.step_seconds
            .get_or_create(&StepMode { step, mode })
            .observe(took.as_secs_f64());
    }

    /// AWS call `action` (`service:Operation`) failed with `code` (AWS's error code or a class;
    /// anything that does not look like a code is counted as `other`).
    pub fn aws_error(&self, action: &'static str, code: &str) {
        self.aws_errors
            .get_or_create(&ActionCode {
                action,
                code: bounded_code(code).to_owned(),
            })
            .inc();
    }

    /// An outbox delivery attempt by `method` ended with `outcome`; `retried` when it is tried again.
    pub fn delivery(&self, method: &'static str, outcome: &'static str, retried: bool) {
        self.deliveries.get_or_create(&MethodOutcome { method, outcome }).inc();
        if retried {
            self.delivery_retries.get_or_create(&Method { method }).inc();
        }
    }

    /// Sets the outbox depth (undelivered items).
    /// The store's own counts (`Store::commit_counts`), read at each scrape.
    pub fn set_store_counts(&self, counts: crate::store::CommitCounts) {
        use std::sync::atomic::Ordering::Relaxed;
        self.store_commits.inner().store(counts.commits, Relaxed);
        self.store_operations.inner().store(counts.operations, Relaxed);
    }

    pub fn set_outbox_depth(&self, items: u64) {
        self.outbox_depth.set(i64::try_from(items).unwrap_or(i64::MAX));
    }
}

/// Decrements the runs-in-progress gauge when dropped (however the run's task ends).
#[derive(Debug)]
pub struct InProgress(Gauge);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An AWS error code as a label value: AWS's codes are short identifiers (`ThrottlingException`,
/// `GlobalClusterNotFoundFault`, `Throttling.Rate`); anything else (empty, long, or with other
/// characters: a message, an ARN) is `other`, so that a label never carries free text.
pub fn bounded_code(code: &str) -> &str {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    if ok { code } else { "other" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_shows_its_gauges_at_zero_and_no_family_without_samples() {
        // prometheus-client leaves out a labelled family until its first sample.
        let text = Telemetry::new().encode();
        assert!(text.contains("# TYPE aurora_failover_bot_runs_in_progress gauge\n"));
        assert!(text.contains("\naurora_failover_bot_runs_in_progress 0\n"));
        assert!(text.contains("\naurora_failover_bot_outbox_depth 0\n"));
        assert!(!text.contains("slack_requests"), "{text}");
        // The Prometheus text format (0.0.4), not OpenMetrics.
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn the_series_alerts_use_start_at_zero_for_each_configured_cluster() {
        let t = Telemetry::new();
        t.start_at_zero(["orders"]);
        let text = t.encode();
        for line in [
            "aurora_failover_bot_runs_total{cluster=\"orders\",mode=\"detach\",outcome=\"failed\"} 0",
            "aurora_failover_bot_runs_total{cluster=\"orders\",mode=\"switchover\",outcome=\"needs_attention\"} 0",
            "aurora_failover_bot_failover_requests_total{cluster=\"orders\",mode=\"failover\",outcome=\"break_glass\"} 0",
            "aurora_failover_bot_slack_requests_total{route=\"interactions\",outcome=\"bad_signature\"} 0",
            "aurora_failover_bot_slack_requests_total{route=\"commands\",outcome=\"stale\"} 0",
            "aurora_failover_bot_slack_deliveries_total{method=\"chat.postMessage\",outcome=\"token_refused\"} 0",
            "aurora_failover_bot_slack_deliveries_total{method=\"response_url\",outcome=\"refused\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
        t.run("orders", "detach", "failed");
        assert!(t.encode().lines().any(|l| l
            == "aurora_failover_bot_runs_total{cluster=\"orders\",mode=\"detach\",outcome=\"failed\"} 1"));
    }

    #[test]
    fn counters_end_in_total_and_histograms_count_seconds() {
        let t = Telemetry::new();
        t.slack_request("commands", "bad_signature", Duration::from_millis(7));
        t.step("precheck", "failover", Duration::from_secs(42));
        let text = t.encode();
        for line in [
            "# TYPE aurora_failover_bot_slack_requests_total counter",
            "aurora_failover_bot_slack_requests_total{route=\"commands\",outcome=\"bad_signature\"} 1",
            "# TYPE aurora_failover_bot_slack_ack_seconds histogram",
            "aurora_failover_bot_slack_ack_seconds_bucket{route=\"commands\",le=\"0.005\"} 0",
            "aurora_failover_bot_slack_ack_seconds_bucket{route=\"commands\",le=\"0.01\"} 1",
            "aurora_failover_bot_slack_ack_seconds_bucket{route=\"commands\",le=\"3\"} 1",
            "aurora_failover_bot_step_duration_seconds_sum{step=\"precheck\",mode=\"failover\"} 42.0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
    }

    #[test]
    fn the_runs_in_progress_gauge_follows_its_guards() {
        let t = Telemetry::new();
        let a = t.run_in_progress();
        let b = t.run_in_progress();
        assert!(t.encode().contains("aurora_failover_bot_runs_in_progress 2"));
        drop(a);
        drop(b);
        assert!(t.encode().contains("aurora_failover_bot_runs_in_progress 0"));
    }

    #[test]
    fn an_aws_error_code_that_is_not_a_code_is_counted_as_other() {
        assert_eq!(bounded_code("ThrottlingException"), "ThrottlingException");
        assert_eq!(bounded_code("Throttling.Rate"), "Throttling.Rate");
        assert_eq!(bounded_code(""), "other");
        assert_eq!(bounded_code("arn:aws:rds::123:global-cluster:x"), "other");
        assert_eq!(bounded_code("some message with spaces"), "other");
        assert_eq!(bounded_code(&"A".repeat(65)), "other");
        let t = Telemetry::new();
        t.aws_error("rds:FailoverGlobalCluster", "arn:aws:rds::123:x");
        assert!(
            t.encode().contains(
                "aurora_failover_bot_aws_errors_total{action=\"rds:FailoverGlobalCluster\",code=\"other\"} 1"
            )
        );
    }
}
