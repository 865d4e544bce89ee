//! The runner's bookkeeping, with the engine's ports stubbed: a finished run queues its outcome again
//! (idempotently) when taken up after a restart, and never calls AWS.

use super::*;
use crate::ports::{ChatError, ClusterState, Member, Topology};
use crate::store::{NewRequest, Outgoing};
use crate::types::{ClusterName, Mode, Region, SlackUserId};
use async_trait::async_trait;
use std::sync::Mutex;

struct NoAws;

#[async_trait]
impl Aurora for NoAws {
    async fn topology(&self, _: &str, _: &[Region]) -> Result<Topology, AwsError> {
        panic!("a finished run must not read AWS")
    }
    async fn cluster(&self, _: &Region, _: &str) -> Result<ClusterState, AwsError> {
        panic!("a finished run must not read AWS")
    }
    async fn detach(&self, _: &str, _: &Member) -> Result<(), AwsError> {
        panic!("a finished run must not change AWS")
    }
    async fn failover(&self, _: &str, _: &Member) -> Result<(), AwsError> {
        panic!("a finished run must not change AWS")
    }
    async fn switchover(&self, _: &str, _: &Member, _: &Member) -> Result<(), AwsError> {
        panic!("a finished run must not change AWS")
    }
    async fn events(&self, _: &Region, _: &str, _: jiff::Timestamp) -> Result<Vec<crate::ports::RdsEvent>, AwsError> {
        panic!("a finished run must not read AWS")
    }
    async fn failover_snapshots(&self, _: &Region, _: &str, _: jiff::Timestamp) -> Result<Vec<String>, AwsError> {
        panic!("a finished run must not read AWS")
    }
}

#[async_trait]
impl crate::ports::Provisioning for NoAws {
    async fn cluster_spec(&self, _: &Region, _: &str) -> Result<crate::ports::ClusterSpec, AwsError> {
        unreachable!("no AWS call expected")
    }
    async fn create_global_cluster(&self, _: &str, _: &ClusterState) -> Result<(), AwsError> {
        unreachable!("no AWS call expected")
    }
    async fn create_secondary(&self, _: &crate::ports::NewSecondary) -> Result<(), AwsError> {
        unreachable!("no AWS call expected")
    }
    async fn create_instance(&self, _: &crate::ports::NewInstance) -> Result<(), AwsError> {
        unreachable!("no AWS call expected")
    }
    async fn instance(&self, _: &Region, _: &str) -> Result<Option<crate::ports::InstanceSpec>, AwsError> {
        unreachable!("no AWS call expected")
    }
}

#[async_trait]
impl Metrics for NoAws {
    async fn replication_lag_ms(&self, _: &Member, _: &Region) -> Result<Option<f64>, AwsError> {
        panic!("a finished run must not read CloudWatch")
    }
}

#[async_trait]
impl crate::ports::Permissions for NoAws {
    async fn evaluate(&self, _: &[crate::ports::PermissionQuery]) -> Result<Vec<crate::ports::Evaluation>, String> {
        panic!("a finished run must not ask IAM")
    }
}

#[async_trait]
impl Dns for NoAws {
    async fn hosted_zone(&self, _: &str) -> Result<crate::ports::HostedZone, AwsError> {
        panic!("a finished run must not read DNS")
    }
    async fn records_at(&self, _: &str, _: &str) -> Result<Vec<crate::ports::RecordSet>, AwsError> {
        panic!("a finished run must not read DNS")
    }
    async fn cnames(&self, _: &str, _: &[&str]) -> Result<Vec<Option<String>>, AwsError> {
        panic!("a finished run must not read DNS")
    }
    async fn upsert_cnames(&self, _: &str, _: &[(&str, &str)], _: i64, _: &str) -> Result<String, AwsError> {
        panic!("a finished run must not change DNS")
    }
    async fn change_insync(&self, _: &str) -> Result<bool, AwsError> {
        panic!("a finished run must not read DNS")
    }
}

/// Records (key, text) of every note and every update key.
#[derive(Default)]
struct Recorder {
    notes: Mutex<Vec<(String, bool)>>,
    updates: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl Chat for Recorder {
    async fn post_request(&self, _: &Request, _: &Plan) -> Result<crate::store::OutboxId, ChatError> {
        Ok(crate::store::OutboxId::new(1))
    }
    async fn update_request(
        &self,
        _: &Request,
        _: &Plan,
        _: &Stage,
        key: Option<&str>,
        _: Option<&crate::store::Fence>,
    ) -> Result<(), ChatError> {
        self.updates.lock().unwrap().push(key.map(str::to_owned));
        Ok(())
    }
    async fn note(
        &self,
        _: &Request,
        _: &Note,
        broadcast: bool,
        key: &str,
        _: Option<&crate::store::Fence>,
    ) -> Result<crate::store::OutboxId, ChatError> {
        let mut notes = self.notes.lock().unwrap();
        notes.push((key.to_owned(), broadcast));
        Ok(crate::store::OutboxId::new(i64::try_from(notes.len()).unwrap()))
    }
    async fn edit(
        &self,
        _: &Request,
        _: crate::store::OutboxId,
        _: &Note,
        key: &str,
        _: Option<&crate::store::Fence>,
    ) -> Result<(), ChatError> {
        self.notes.lock().unwrap().push((key.to_owned(), false));
        Ok(())
    }
    async fn respond(&self, _: &str, _: &report::Answer, _: bool) -> Result<(), ChatError> {
        Ok(())
    }
    async fn respond_after(
        &self,
        _: &str,
        _: &crate::runbook::report::Answer,
        _: crate::store::OutboxId,
    ) -> Result<(), ChatError> {
        Ok(())
    }
    async fn respond_plan(&self, _: &str, _: &Plan) -> Result<(), ChatError> {
        Ok(())
    }
}

/// A plan moving `orders` from east (us-east-1) to west (us-west-2) by `mode`, with no global writer
/// endpoint recorded.
fn plan(mode: Mode) -> Plan {
    Plan {
        cluster: ClusterName::parse("orders").unwrap(),
        global_cluster_id: "orders-global".into(),
        mode,
        from: member("us-east-1", "east", true),
        to: member("us-west-2", "west", false),
        zone_id: "Z1".into(),
        writer_record: "w.zone".into(),
        reader_record: "r.zone".into(),
        record_ttl: 1,
        regions: vec![Region::parse("us-east-1").unwrap(), Region::parse("us-west-2").unwrap()],
        dns_before: plan::DnsTargets::default(),
        mode_proposed: false,
        target_reason: None,
        lag_ms: None,
        checks: vec![],
        global_endpoint: None,
        global_endpoint_read: false,
        rebuild: None,
        probe: None,
    }
}

fn member(region: &str, id: &str, writer: bool) -> Member {
    Member {
        region: Region::parse(region).unwrap(),
        cluster_id: id.into(),
        arn: format!("arn:aws:rds:{region}:123456789012:cluster:{id}"),
        is_writer: writer,
        sync: None,
    }
}

#[tokio::test]
async fn a_finished_run_taken_up_again_only_queues_its_outcome_again() {
    let store: Arc<dyn Store> = Arc::new(crate::store::MemoryStore::new());
    let now = jiff::Timestamp::now();
    let id = store
        .create_request(&NewRequest {
            cluster: ClusterName::parse("orders").unwrap(),
            mode: Some(Mode::Detach),
            requested_by: SlackUserId::parse("U0ALICE").unwrap().into(),
            to_region: None,
            origin_channel: "C0INCIDENT".into(),
            response_url: None,
            requested_at: now,
            expires_at: now + jiff::SignedDuration::from_mins(15),
            reason: None,
            ticket: None,
        })
        .await
        .unwrap()
        .unwrap();
    let plan = plan(Mode::Detach);
    let message = store
        .enqueue(
            &Outgoing {
                ordering_key: "request:1",
                kind: "post",
                channel: None,
                target: None,
                response_url: None,
                body: "{}",
                dedup_key: None,
                fence: None,
            },
            now,
        )
        .await
        .unwrap();
    assert!(
        store
            .mark_pending(id, &serde_json::to_string(&plan).unwrap(), Mode::Detach, message)
            .await
            .unwrap()
    );
    let bob: crate::types::Person = SlackUserId::parse("U0BOB").unwrap().into();
    let crate::store::Decided::Won { run_id: Some(run) } =
        store.decide(id, true, &bob, now, "precheck", "{}", None).await.unwrap()
    else {
        panic!("not approved")
    };
    let data = RunData {
        outcome: Some(Outcome::Failed(Failure {
            step: Step::WaitWritable,
            reason: "timed out".into(),
            cluster_now: "west is promoting".into(),
            dns_now: "unchanged".into(),
            dns_touched: false,
        })),
        ..RunData::default()
    };
    store
        .finish_run(run, RunState::Failed, &serde_json::to_string(&data).unwrap(), now, None)
        .await
        .unwrap();

    let chat = Arc::new(Recorder::default());
    let runner = runner(store.clone(), chat.clone());
    runner.clone().execute(run).await;
    runner.execute(run).await;
    let notes = chat.notes.lock().unwrap().clone();
    let key = format!("run:{run}:failed");
    assert_eq!(
        notes,
        [(key.clone(), true), (key, true)],
        "the same keyed, broadcast outcome both times"
    );
    let updates = chat.updates.lock().unwrap().clone();
    assert!(
        updates
            .iter()
            .all(|k| k.as_deref() == Some(&format!("run:{run}:stage:failed")[..]))
    );
    assert_eq!(
        store.run(run).await.unwrap().unwrap().state,
        RunState::Failed,
        "still failed, not run again"
    );
}

/// A runner over `store` whose AWS ports panic when called.
fn runner(store: Arc<dyn Store>, chat: Arc<Recorder>) -> Arc<Runner> {
    Arc::new(Runner {
        store: store.clone(),
        aurora: Arc::new(NoAws),
        provisioning: Arc::new(NoAws),
        dns: Arc::new(NoAws),
        metrics: Arc::new(NoAws),
        permissions: Arc::new(NoAws),
        chat,
        clock: Arc::new(crate::ports::SystemClock),
        settings: crate::settings::RunbookSettings {
            poll_interval: Duration::from_millis(100),
            lag_limit: Duration::from_secs(60),
            promote_timeout: Duration::from_secs(1),
            dns_timeout: Duration::from_secs(1),
            late_dns_window: Duration::from_secs(1),
            rebuild_timeout: std::time::Duration::from_secs(3600),
        },
        shutdown: CancellationToken::new(),
        aborts: Default::default(),
        in_flight: Default::default(),
        telemetry: Default::default(),
        database: None,
        leases: Arc::new(crate::lease::Leaseholder {
            store,
            clock: Arc::new(crate::ports::SystemClock),
            instance: crate::lease::Instance::new("test-bot", None),
            settings: crate::lease::LeaseSettings::default(),
        }),
    })
}

#[tokio::test]
async fn a_run_whose_stored_data_cannot_be_read_needs_attention_and_stops_only_itself() {
    let store: Arc<dyn Store> = Arc::new(crate::store::MemoryStore::new());
    let now = jiff::Timestamp::now();
    let bob: crate::types::Person = SlackUserId::parse("U0BOB").unwrap().into();
    let mut runs = Vec::new();
    for (cluster, data) in [("orders", "[not run data"), ("billing", "{}")] {
        let id = store
            .create_request(&NewRequest {
                cluster: ClusterName::parse(cluster).unwrap(),
                mode: Some(Mode::Detach),
                requested_by: SlackUserId::parse("U0ALICE").unwrap().into(),
                to_region: None,
                origin_channel: "C0INCIDENT".into(),
                response_url: None,
                requested_at: now,
                expires_at: now + jiff::SignedDuration::from_mins(15),
                reason: None,
                ticket: None,
            })
            .await
            .unwrap()
            .unwrap();
        let message = store
            .enqueue(
                &Outgoing {
                    ordering_key: "request",
                    kind: "post",
                    channel: None,
                    target: None,
                    response_url: None,
                    body: "{}",
                    dedup_key: None,
                    fence: None,
                },
                now,
            )
            .await
            .unwrap();
        // The plan is not needed: the run stops before it is read, or (the readable one) it has
        // finished and only queues its outcome.
        assert!(store.mark_pending(id, "{}", Mode::Detach, message).await.unwrap());
        let crate::store::Decided::Won { run_id: Some(run) } =
            store.decide(id, true, &bob, now, "precheck", data, None).await.unwrap()
        else {
            panic!("not approved")
        };
        runs.push(run);
    }
    let chat = Arc::new(Recorder::default());
    let runner = runner(store.clone(), chat.clone());
    runner.clone().execute(runs[0]).await;
    let run = store.run(runs[0]).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::NeedsAttention);
    assert_eq!(
        run.data, "[not run data",
        "the stored data is kept for a person to read"
    );
    let journal = store.journal_of(runs[0]).await.unwrap();
    assert!(journal[0].detail.contains("could not be read"), "{journal:?}");
    assert_eq!(
        chat.notes.lock().unwrap().clone(),
        [(format!("run:{}:unreadable", runs[0]), true)]
    );
    // Taken up again (a restart), it says nothing more; the other run is not affected.
    runner.clone().execute(runs[0]).await;
    assert_eq!(chat.notes.lock().unwrap().len(), 1);
    assert_eq!(store.run(runs[1]).await.unwrap().unwrap().state, RunState::Running);
}

#[test]
fn a_plan_from_a_build_that_did_not_record_the_global_endpoint_still_takes_a_global_writer_endpoint() {
    let mut plan = plan(Mode::Switchover);
    let global = "orders-global.global-abc123.global.rds.amazonaws.com";
    let ends = (
        "west.cluster-x.us-west-2.rds.amazonaws.com",
        "west.cluster-ro-x.us-west-2.rds.amazonaws.com",
    );
    assert!(super::steps::refuse_foreign_writer(&plan, global, ends).is_ok());
    assert!(super::steps::refuse_foreign_writer(&plan, "elsewhere.example.com", ends).is_err());
    // A plan that recorded its endpoint takes only that one; one that read none (AWS gave none) takes none.
    plan.global_endpoint_read = true;
    assert!(super::steps::refuse_foreign_writer(&plan, global, ends).is_err());
    plan.global_endpoint = Some("orders-global.global-def456.global.rds.amazonaws.com".into());
    assert!(super::steps::refuse_foreign_writer(&plan, global, ends).is_err());
}
