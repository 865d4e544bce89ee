//! criterion micro-benchmarks of the Slack edge (issue 13): the signature verifier on a typical slash
//! command body, and the renderers of the status answer (1 and 50 clusters) and of a request's
//! approval message. `scripts/bench` runs them (`cargo bench --bench slack`) and puts the medians
//! into BENCHMARKS.md.
//!
//! The rendered values are real: the bench reads them once, before measuring, from the AWS emulator
//! (`awsim`, a fleet of two-Region global clusters) through the bot's own AWS adapters, survey and
//! planner, so the renderers see what `/aurora status` and `/aurora failover` give them.

use aurora_failover_bot::aws::{self, AwsOverrides};
use aurora_failover_bot::runbook::plan::{Limits, Plan, make_plan};
use aurora_failover_bot::runbook::report::Stage;
use aurora_failover_bot::runbook::survey::survey;
use aurora_failover_bot::settings::Settings;
use aurora_failover_bot::slack::render;
use aurora_failover_bot::slack::verify::Verifier;
use aurora_failover_bot::status::{ClusterReport, Past, reports};
use aurora_failover_bot::store::{Request, RequestState};
use aurora_failover_bot::types::{Person, Principal, Secret, SlackUserId};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// Clusters in the emulated fleet (the status answer is benchmarked for the first one and for all).
const FLEET: usize = 50;

/// The bot's settings for the emulator's fleet of `n` clusters (`awsim::Scenario::fleet`).
fn settings(n: usize) -> Settings {
    let clusters: String = (0..n)
        .map(|i| {
            format!(
                "[[clusters]]\nname = \"c{i}\"\nglobal_cluster_id = \"g{i}-global\"\nregions = [\"us-east-1\", \"us-west-2\"]\n\
                 hosted_zone_id = \"Z0123456789\"\nwriter_record = \"w{i}.aurora_private_hosted_zone\"\n\
                 reader_record = \"r{i}.aurora_private_hosted_zone\"\nrecord_ttl = 1\n\n"
            )
        })
        .collect();
    let toml = format!(
        "[slack]\nsigning_secret = \"bench\"\nbot_token = \"xoxb-bench\"\nincident_channel = \"C0INCIDENT\"\n\
         [approval]\nrequesters = [\"U0ALICE\"]\napprovers = [\"U0BOB\"]\n{clusters}"
    );
    Settings::from_toml(&toml).expect("the bench's settings are valid")
}

/// The status reports of the whole fleet, and the plan of a failover of the first cluster, read from
/// the emulator.
fn read_fleet() -> (Settings, Vec<ClusterReport>, Plan) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let sim = awsim::start(
            "127.0.0.1:0".parse().expect("an address"),
            awsim::Scenario::fleet(FLEET),
        )
        .await
        .expect("the emulator starts");
        let config = aws::load_config(&AwsOverrides {
            endpoint_url: Some(sim.url().to_owned()),
            static_credentials: true,
            max_attempts: Some(1),
            attempt_timeout: None,
        })
        .await;
        let aurora = aws::rds::RdsAurora::new(config.clone());
        let metrics = aws::cloudwatch::CloudWatchMetrics::new(config.clone());
        let dns = aws::route53::Route53Dns::new(&config);
        let s = settings(FLEET);
        let clusters: Vec<_> = s.clusters.iter().map(|c| (c, Past::default())).collect();
        let all = reports(&aurora, &metrics, &dns, &clusters).await;
        let surveyed = survey(&aurora, &metrics, &dns, None, &s.clusters[0])
            .await
            .expect("the emulator answers the survey");
        let plan = make_plan(&s.clusters[0], &surveyed, None, None, Limits { lag_limit_ms: 60_000.0 })
            .expect("the fleet's first cluster can fail over");
        sim.shutdown().await;
        (s, all, plan)
    })
}

fn verifier(c: &mut Criterion) {
    let body = standin::SlackSender::command_body(
        "U0ALICE",
        "C0INCIDENT",
        "status",
        "https://hooks.slack.com/commands/T0STANDIN/1234567890/abcdefABCDEF",
    );
    let now = jiff::Timestamp::now().as_second();
    let ts = now.to_string();
    let signature = standin::signing::sign(&standin::Secret::new("bench"), &ts, body.as_bytes());
    let v = Verifier::new(vec![Secret::new("bench".to_owned())]);
    assert!(v.verify(Some(&ts), Some(&signature), body.as_bytes(), now).is_ok());
    c.bench_function("verify a signed /aurora status command", |b| {
        b.iter(|| v.verify(Some(&ts), Some(&signature), black_box(body.as_bytes()), now))
    });
}

fn renderers(c: &mut Criterion) {
    let (s, all, plan) = read_fleet();
    c.bench_function("render the status answer, 1 cluster", |b| {
        b.iter(|| render::status(black_box(&all[..1])))
    });
    c.bench_function("render the status answer, 50 clusters", |b| {
        b.iter(|| render::status(black_box(&all)))
    });
    let alice = SlackUserId::parse("U0ALICE").expect("a user id");
    let bob = SlackUserId::parse("U0BOB").expect("a user id");
    let now = jiff::Timestamp::now();
    let request = Request {
        id: 1.into(),
        cluster: s.clusters[0].name.clone(),
        mode: Some(plan.mode),
        requested_by: Person::Slack(alice),
        requested_at: now,
        to_region: None,
        origin_channel: "C0INCIDENT".into(),
        response_url: None,
        expires_at: now,
        state: RequestState::Pending,
        plan: None,
        decided_by: None,
        decided_at: None,
        note: None,
        reason: None,
        ticket: None,
        approvals: Vec::new(),
        message: None,
    };
    let policy = s.approval.policy.policy(&request.cluster, Some(plan.mode.into()));
    let mention = [Principal::User(bob)];
    c.bench_function("render a request's approval message", |b| {
        b.iter(|| render::request_message(black_box(&request), &plan, &Stage::AwaitingApproval, policy, &mention))
    });
}

criterion_group!(benches, verifier, renderers);
criterion_main!(benches);
