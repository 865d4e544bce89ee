//! Break-glass: a failover asked for at a terminal when Slack is unavailable. It is the same request,
//! plan, pre-flight checks, cluster lock, journal and run as one asked for in Slack; only the second
//! person is skipped, and the audit says who (the OS user the kernel reported), with which AWS
//! identity, and why.

use super::{Approvals, RequestRefusal, first_run_data, planning_timed_out};
use crate::runbook::plan::{Plan, Unplanned};
use crate::runbook::report::{Note, Stage};
use crate::runbook::{Step, approved_key};
use crate::settings::ClusterSettings;
use crate::store::{Decided, RequestId};
use crate::types::{Mode, Person, Region};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Who started a break-glass run and why: recorded in the audit and said in the request's thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    /// The OS user, as the kernel reported it (the CLI's own user, or the admin socket's peer):
    /// always a `Person::Terminal`.
    pub login: String,
    /// The AWS identity the run's calls are made with: the ARN `sts:GetCallerIdentity` returned, or
    /// why it could not be read.
    pub aws_caller: String,
    /// Why Slack approval was skipped (required, free text).
    pub reason: String,
    /// How it reached the bot: `terminal` (the CLI ran it itself) or `admin socket` (handed to the
    /// serving bot).
    pub via: String,
}

/// Why a break-glass failover did not start. Nothing was changed in AWS.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BreakGlassRefusal {
    #[error("a reason is required (--reason)")]
    NoReason,
    #[error("{0:?} is not a login name the bot can record")]
    BadLogin(String),
    #[error("{0}")]
    Request(RequestRefusal),
    /// The plan could not be made or its pre-flight checks failed: break-glass skips the second
    /// person, never the checks.
    #[error("request #{id} not started: {reason}")]
    NotPlanned { id: RequestId, reason: Unplanned },
    #[error("request #{id} not started: {why}")]
    Store { id: RequestId, why: String },
}

/// A break-glass run started: its request (the run is found with `Store::run_of_request`; it may be
/// created a moment later if the store was busy) and its plan.
#[derive(Debug, Clone)]
pub struct Started {
    pub request: RequestId,
    pub plan: Plan,
}

impl Approvals {
    /// Records a request from `who`, plans it with every pre-flight check, posts it to the incident
    /// channel (when Slack is reachable; queued otherwise), approves it as break-glass and launches
    /// its run. Each refusal is audited; nothing is changed in AWS before the run's own re-check.
    pub async fn break_glass(
        &self,
        who: &BreakGlass,
        c: &ClusterSettings,
        to: Option<Region>,
        mode: Option<Mode>,
    ) -> Result<Started, BreakGlassRefusal> {
        let person = Person::terminal(&who.login).ok_or_else(|| BreakGlassRefusal::BadLogin(who.login.clone()))?;
        let action = format!("break-glass failover {}", c.name);
        if who.reason.trim().is_empty() {
            self.audit(&person, &action, None, "refused: no reason").await;
            return Err(BreakGlassRefusal::NoReason);
        }
        let origin = super::Origin {
            channel: self.settings.slack.incident_channel.as_str(),
            response_url: None,
            team_domain: None,
        };
        let ask = super::Ask {
            to: to.as_ref(),
            mode,
            dry_run: false,
            given: super::Given {
                reason: Some(who.reason.trim()),
                ticket: None,
            },
        };
        let id = match self.record_request(person.clone(), c, &ask, origin).await {
            Ok(id) => id,
            Err(why) => {
                self.audit(&person, &action, None, &format!("refused: {why}")).await;
                return Err(BreakGlassRefusal::Request(why));
            }
        };
        let detail = format!(
            "recorded without a second approver; reason: {}; AWS caller: {}; via {}",
            who.reason.trim(),
            who.aws_caller,
            who.via
        );
        self.audit(&person, &action, Some(id), &detail).await;
        self.telemetry()
            .request(c.name.as_str(), super::mode_label(mode), "requested");
        let planned = match tokio::time::timeout(super::PLANNING_TIMEOUT, self.plan_for(c, to.as_ref(), mode)).await {
            Ok(r) => r,
            Err(_) => Err(planning_timed_out()),
        };
        match planned {
            Ok(plan) => self.start_break_glass(&person, who, id, plan).await,
            Err(reason) => {
                let request = self.request_named(id).await.map_err(|_| BreakGlassRefusal::Store {
                    id,
                    why: "the store did not answer".into(),
                })?;
                self.reject(&request, reason.clone()).await;
                Err(BreakGlassRefusal::NotPlanned { id, reason })
            }
        }
    }

    /// Approves the planned request as break-glass, tells the channel, and launches its run.
    async fn start_break_glass(
        &self,
        person: &Person,
        who: &BreakGlass,
        id: RequestId,
        plan: Plan,
    ) -> Result<Started, BreakGlassRefusal> {
        let run_id = match self.approve_break_glass(person, id, &plan).await {
            Ok(run_id) => run_id,
            Err(e) => {
                // Best effort: a request left planning would hold its cluster until it expired.
                let _ = self.store.mark_rejected(id, &e.to_string()).await;
                return Err(e);
            }
        };
        info!(%id, by = %person, "break-glass request approved without a second person");
        self.audit(
            person,
            "break-glass approve",
            Some(id),
            "started without a second approver",
        )
        .await;
        if let Ok(request) = self.request_named(id).await {
            // Its own outcome, so that an alert can fire on every use of break-glass.
            self.count(&request, "break_glass");
            let note = Note::BreakGlass {
                by: person.clone(),
                reason: who.reason.trim().to_owned(),
                aws_caller: who.aws_caller.clone(),
            };
            let stage = Stage::Running {
                approved_by: person.clone(),
                step: Step::FIRST,
            };
            self.tell(&request, Some(&plan), &stage, note, &approved_key(id)).await;
        }
        match run_id {
            Some(run_id) => self.launcher.launch(run_id),
            None => self.create_run_later(id),
        }
        Ok(Started { request: id, plan })
    }

    /// Posts the planned request (queued if Slack is down), records its plan, and approves it by
    /// compare-and-set as `person`. Returns the run's id (`None`: created later, the store was busy).
    async fn approve_break_glass(
        &self,
        person: &Person,
        id: RequestId,
        plan: &Plan,
    ) -> Result<Option<crate::store::RunId>, BreakGlassRefusal> {
        let store_failed = |why: &str| BreakGlassRefusal::Store {
            id,
            why: why.to_owned(),
        };
        let plan_json = serde_json::to_string(plan).map_err(|_| store_failed("the plan could not be saved"))?;
        let request = self
            .request_named(id)
            .await
            .map_err(|_| store_failed("the store did not answer"))?;
        let message = self
            .chat
            .post_request(&request, plan)
            .await
            .map_err(|_| store_failed("the request message could not be queued"))?;
        if let Err(e) = self.store.attach_message(id, message).await {
            warn!(error = %e, "cannot record the request's message");
        }
        match self.store.mark_pending(id, &plan_json, plan.mode, message).await {
            Ok(true) => {}
            Ok(false) => return Err(store_failed("it was cancelled while it was being planned")),
            Err(_) => return Err(store_failed("the plan could not be recorded")),
        }
        let now = self.clock.now();
        let decided = self
            .store
            .decide(id, true, person, now, Step::FIRST.as_str(), &first_run_data(), None)
            .await
            .map_err(|_| store_failed("the approval could not be recorded"))?;
        match decided {
            Decided::Won { run_id } => Ok(run_id),
            Decided::Lost(_) => Err(store_failed("it was decided in Slack in the meantime")),
        }
    }

    /// A break-glass run stopped at the terminal (Ctrl-C, SIGTERM) before its first change to AWS:
    /// abandoned by `person` (nothing was changed, so nothing is left half done) and the cluster freed.
    /// `Ok(false)` when the run had sent a change (then it stays, saved, for the next bot on the store
    /// to finish: after its first change a run is never abandoned but by a person in Slack), has ended,
    /// or has not been created. Call it once the run's task has stopped.
    pub async fn abandon_unchanged(&self, request: RequestId, person: &Person) -> Result<bool, String> {
        let run = match self.store.run_of_request(request).await {
            Ok(Some(run)) => run,
            Ok(None) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        };
        let data: crate::runbook::RunData = run.stored_data().map_err(|e| e.to_string())?;
        if data.detach_sent || data.managed_sent || data.dns_sent {
            return Ok(false);
        }
        let reason = "interrupted at the terminal before any change to AWS";
        match self.store.abandon_run(run.id, person, reason, self.clock.now()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        }
        self.audit(
            person,
            &format!("abandon run {}", run.id),
            Some(request),
            &format!("done: {reason}"),
        )
        .await;
        if let Err(e) = self.launcher.runner.abandoned(run.id).await {
            warn!(error = %e, "cannot announce an abandoned run");
        }
        Ok(true)
    }
}
