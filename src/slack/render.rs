//! Every word the bot says in Slack, in one place: the approval request (and its later states), the
//! thread replies of a run, the answers to commands and clicks (what was done, why it was refused,
//! what became of a request), `/aurora status` and `/aurora history`. Pure functions from the
//! engine's typed values (`Stage`, `Note`, `Answer`, `Done`, `Refusal`, reports) to Slack text and
//! blocks; the engine itself writes no markup. Slack's limits are enforced here.

use super::client::MessageBody;
use super::command::{NotConfigured, UsageError};
use super::limits;
use super::workspace::Foreign;
use crate::approval::{AbandonTarget, Actionable, Done, PendingList, Refusal, RequestLink, RequestRefusal, Role};
use crate::runbook::Step;
use crate::runbook::plan::{Alternative, Outcome, Plan, PlanError, Unplanned, lag_text};
use crate::runbook::report::{Aftermath, Answer, Attention, Completion, Note, OperationSeen, ResumeTarget, Stage};
use crate::settings::Policy;
use crate::status::{ClusterReport, CnameCheck};
use crate::store::{Request, RequestId, RunId, RunState};
use crate::types::{ChannelId, ClusterName, Mode, Person, Principal, Region, SlackUserId, human_duration as duration};
use serde_json::{Value, json};

/// The buttons' action ids and values, which the command parser reads back.
pub use super::command::{
    ABANDON_CONFIRM, APPROVE, AbandonValue, DENY, DENY_REASON_VIEW, PENDING_APPROVE, PENDING_DENY, REASON_ACTION,
    REASON_BLOCK, RESUME_APPROVE, RESUME_DENY,
};

/// Escapes the three characters mrkdwn treats specially.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// User-typed text shown back as an inline code span that the text cannot break out of: `&`, `<`,
/// `>` escaped, backticks shown as `ˋ` (U+02CB), line breaks as spaces, at most 80 characters.
pub fn code(s: &str) -> String {
    let mut shown: String = s
        .chars()
        .map(|c| match c {
            '`' => 'ˋ',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(80)
        .collect();
    if s.chars().count() > 80 {
        shown.push('…');
    }
    format!("`{}`", esc(&shown))
}

/// An identifier AWS or the bot made (a cluster id, a snapshot name, a command the bot suggests),
/// shown whole as an inline code span.
fn ident(s: &str) -> String {
    format!("`{}`", esc(s))
}

fn section(md: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": md}})
}

fn context(md: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": md}]})
}

fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": text}})
}

fn user(u: &SlackUserId) -> String {
    format!("<@{u}>")
}

/// Who approved a request: every approval counted (several under a policy asking for more than
/// one), or `p` alone.
fn approvals_of(p: &Person, request: &Request) -> String {
    if request.approvals.len() > 1 {
        let all: Vec<_> = request.approvals.iter().map(|a| person(&a.by)).collect();
        return format!("*Approved* by {}", all.join(", "));
    }
    approved(p)
}

/// Who let a run start: "*Approved* by" a Slack user, or break-glass from a terminal (nobody approved).
fn approved(p: &Person) -> String {
    match p {
        Person::Slack(u) => format!("*Approved* by {}", user(u)),
        Person::Terminal(login) => format!("*Break-glass* by `{login}` from a terminal, no second approver"),
    }
}

/// A Slack user as a mention; an OS user (break-glass, at the bot's terminal) by login name.
fn person(p: &Person) -> String {
    match p {
        Person::Slack(u) => user(u),
        Person::Terminal(login) => format!("`{login}` (break-glass, from a terminal)"),
    }
}

fn principal(p: &Principal) -> String {
    match p {
        Principal::User(u) => user(u),
        Principal::Group(g) => format!("<!subteam^{g}>"),
    }
}

/// `1 of 2 approvals: @bob`.
fn progress(request: &Request, need: usize) -> String {
    let have = request.approvals.len();
    let who: Vec<_> = request.approvals.iter().map(|a| person(&a.by)).collect();
    if who.is_empty() {
        format!("0 of {need} approvals")
    } else {
        format!("{have} of {need} approvals: {}", who.join(", "))
    }
}

/// "1st", "2nd", ... for a count of approvals.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix} approval")
}

/// People and groups, mentioned, comma-separated.
fn names(list: &[Principal]) -> String {
    list.iter().map(principal).collect::<Vec<_>>().join(", ")
}

/// A reason for people: what AWS or a record holds is escaped (it may contain `<...>` mentions or
/// links), and a closing full stop dropped (the sentence around it adds one).
fn reason(reason: &str) -> String {
    esc(reason.trim_end().trim_end_matches('.'))
}

/// A run's state, as a person reads it.
fn run_state(state: RunState) -> &'static str {
    match state {
        RunState::Running => "still running",
        RunState::NeedsAttention => "waiting for a person",
        RunState::Succeeded => "finished: it succeeded",
        RunState::Failed => "finished: it failed",
        RunState::Abandoned => "abandoned",
    }
}

/// `Unknown cluster X. Configured clusters: ...`, for a name a person typed.
pub fn unknown_cluster(given: &str, configured: &[String]) -> String {
    format!(
        "Unknown cluster {}. Configured clusters: {}.",
        code(given),
        configured.join(", ")
    )
}

/// `/aurora help`: every command, what it does and who may use it.
pub fn usage() -> &'static str {
    USAGE
}

const USAGE: &str = "\
*Usage*
• `/aurora status [CLUSTER]`: each global cluster's members (Region, role, status, endpoints) and where the writer and reader CNAMEs point.
• `/aurora failover CLUSTER [--to REGION] [--mode switchover|failover|detach] [--reason WHY] [--ticket TICKET] [--dry-run]`: ask to move CLUSTER's writer to REGION. A second, authorised person approves it in the incident channel (some clusters or modes need more approvers, a reason or a ticket: the bot says which).
   Without `--to`: the only secondary, or the one with the least replication lag. Without `--mode`: a switchover if one is possible; otherwise the bot says which modes are possible, what each loses, and what to type.
   `--mode switchover`: planned, no data loss, needs a healthy primary. `--mode failover`: managed, loses what was not replicated, keeps the global topology. `--mode detach`: removes the target from the global cluster and promotes it; loses what was not replicated; the old primary stays writable.
   `--reason WHY`: why you ask (quote it; at most 500 characters). `--ticket TICKET`: the incident or change ticket, one word (at most 100 characters). Both show on the request; a policy may require them.
   `--dry-run`: show the plan and its pre-flight checks to you only; request nothing.
• `/aurora pending`: the open requests you may act on (approve, deny, or withdraw your own), with buttons; Deny asks for a reason, posted in the request's thread.
• `/aurora rebuild CLUSTER --in REGION [--reason WHY] [--ticket TICKET] [--dry-run]`: after a detach, protect CLUSTER again: a new global cluster from the promoted cluster and a new secondary in REGION, with the old primary's settings there. Approved like a failover; the old primary is never deleted.
• `/aurora cancel REQUEST`: withdraw request REQUEST (its number, e.g. `17`) before it is decided; the requester or an approver may.
• `/aurora history [CLUSTER]`: the recent requests and runs: who asked, who decided, when, the mode, the outcome and how long it took.
• `/aurora resume RUN`: let a run that needs attention finish: the bot checks that the target is writable and moves the CNAMEs. A second person (an approver) approves it in the run's thread.
• `/aurora abandon RUN REASON`: stop a run here, with a confirmation button; nothing more is changed in AWS and the cluster is free again. The requester or an approver may.
• `/aurora help`: this message.";

/// Text after `/aurora` that is not a command: what is wrong with it, then the usage.
pub fn usage_error(e: &UsageError) -> String {
    let wrong = match e {
        UsageError::UnknownCommand(typed) => format!("unknown command {}", code(typed)),
        UsageError::MissingCluster(verb) => format!("`{verb}` needs a cluster name"),
        UsageError::MissingValue(option) => format!("{} needs a value", code(option)),
        UsageError::UnknownOption(typed) => format!("unknown option {}", code(typed)),
        UsageError::Repeated(option) => format!("{} is given twice", code(option)),
        UsageError::BadMode(typed) => format!("{} is not a mode: use detach, failover or switchover", code(typed)),
        UsageError::Unexpected(typed) => format!("unexpected {}", code(typed)),
        UsageError::MissingRequest => "`cancel` needs a request number, such as `cancel 17` or `cancel #17`".to_owned(),
        UsageError::MissingRun(verb) => {
            let reason = if *verb == "abandon" { " REASON" } else { "" };
            format!("`{verb}` needs a run number, as the run's thread gives it, such as `{verb} 3{reason}`")
        }
        UsageError::MissingReason => {
            "`abandon` needs a reason after the run number, such as `abandon 3 DNS moved by hand`".to_owned()
        }
        UsageError::MissingRegion => {
            "`rebuild` needs `--in REGION`: the Region of the new secondary, such as `rebuild orders --in us-east-1`"
                .to_owned()
        }
        UsageError::Unclosed(option) => format!("the value of {} has no closing quote", code(option)),
        UsageError::TooLong(option, max) => format!("{} is longer than {max} characters", code(option)),
    };
    format!("{wrong}.\n\n{USAGE}")
}

/// A command naming a cluster or Region the settings lack, answered with those they have.
pub fn not_configured(why: &NotConfigured) -> String {
    match why {
        NotConfigured::Cluster { typed, configured } => unknown_cluster(typed, configured),
        NotConfigured::Region {
            typed,
            cluster,
            regions,
        } => not_a_region(typed, cluster, regions.iter().map(String::as_str).collect()),
    }
}

/// `X is not a Region of CLUSTER. Its Regions: ...`, for a Region a person typed.
fn not_a_region(given: &str, cluster: &str, regions: Vec<&str>) -> String {
    format!(
        "{} is not a Region of {cluster}. Its Regions: {}.",
        code(given),
        regions.join(", ")
    )
}

/// The immediate answer to `/aurora failover`: recorded, and where the approval request will be.
pub fn request_recorded(id: RequestId, channel: &ChannelId) -> String {
    format!(
        "Request #{id} is recorded. Reading the topology now; the approval request will be posted in <#{channel}> \
         in a moment."
    )
}

/// To the requester, when Slack refused to post their approval request for good (`why`: Slack's error
/// code and what to fix, from the client): the request is closed and holds nothing.
pub fn request_unposted(id: RequestId, why: &str) -> String {
    format!(
        "Request #{id} was not posted for approval: Slack says {}. Nothing was changed; fix that and ask again.",
        esc(why)
    )
}

/// To someone whose Approve or Deny click was not on request `id`'s own approval message (another
/// channel, or a copy of its buttons): nothing was done.
pub fn stray_click(id: RequestId) -> String {
    format!(
        "Nothing was done: this button is not on request #{id}'s own approval message in the incident channel. Use \
         the buttons there."
    )
}

/// The immediate answer to `/aurora failover --dry-run`.
pub fn dry_run_started() -> &'static str {
    "Dry run: reading the topology; the plan and its checks will follow here, for you only."
}

/// `/aurora history` when the store cannot be read.
pub fn history_unreadable() -> &'static str {
    "The history could not be read (the bot's database failed)."
}

/// `/aurora status` when too many answers are being prepared already.
pub fn status_busy() -> &'static str {
    "The bot is busy answering other status requests (AWS may be slow); nothing is lost, try again in a few seconds."
}

/// A signed command from outside the bot's workspace or app, or before the bot knows its workspace.
pub fn foreign_command(why: &Foreign) -> &'static str {
    match why {
        Foreign::WorkspaceUnknown => {
            "The bot cannot yet tell which Slack workspace it serves (it is starting, or Slack refuses its token: its \
             /readyz says which); nothing was done. Try again in a minute."
        }
        _ => "This bot does not serve this workspace or app; nothing was done.",
    }
}

/// A command received a second time (same signature): answered, not acted on.
pub fn replayed_command() -> &'static str {
    "This exact request was already received (a retry or a replay); it was handled once."
}

/// A command whose user id is not one Slack issues.
pub fn user_not_recognised() -> &'static str {
    "Your Slack user id was not recognised."
}

/// Why no plan could be made, for the requester (in a rejected request's answer, its stored note and
/// the audit, through its `Display`, and in a dry run's answer).
pub fn plan_error(e: &PlanError) -> String {
    match e {
        PlanError::NoWriter(global) => {
            format!("global cluster {global} has no writer member right now, so there is nothing to fail over from")
        }
        PlanError::NotAMember {
            region,
            global,
            members,
        } => {
            format!("{region} is not a Region of {global}'s members ({members})")
        }
        PlanError::AlreadyWriter { region, global } => format!("{region} already holds the writer of {global}"),
        PlanError::NoSecondary(global) => format!("{global} has no secondary to fail over to"),
        PlanError::Ambiguous { global, regions } => {
            format!("{global} has several secondaries ({regions}) and their lag is unknown: say which with --to")
        }
        PlanError::Refused {
            asked,
            cluster,
            to,
            failed,
            alternatives,
        } => {
            let what = match asked {
                Some(mode) => format!("a {mode}"),
                None => "a switchover (the only mode that loses no data)".to_owned(),
            };
            format!(
                "{what} to {to} is not possible: {failed}{}",
                possible_instead(cluster, to, alternatives)
            )
        }
    }
}

/// The modes possible instead of a refused one: what each loses, and the command that asks for it.
fn possible_instead(cluster: &ClusterName, to: &Region, alternatives: &[Alternative]) -> String {
    if alternatives.is_empty() {
        return "\nNo other mode is possible right now.".to_owned();
    }
    let each = alternatives.iter().map(|Alternative { mode: m, lag_ms }| {
        let lag = lag_ms.map_or_else(
            || " (lag unknown)".to_owned(),
            |ms| format!(" (lag now {})", lag_text(ms)),
        );
        format!(
            "\n• `--mode {m}`: {}{lag}. Type `/aurora failover {cluster} --to {to} --mode {m}`",
            m.cost()
        )
    });
    format!("\nPossible instead:{}", each.collect::<String>())
}

/// Why there is no plan, for the person who asked.
pub fn unplanned(u: &Unplanned) -> String {
    match u {
        Unplanned::Plan(e) => plan_error(e),
        Unplanned::Other(why) => why.clone(),
    }
}

/// Why a `/aurora failover` was not recorded, for the person who typed it.
pub fn request_refusal(why: &RequestRefusal) -> String {
    match why {
        RequestRefusal::NotRequester(requesters) => format!(
            "You are not allowed to request a failover. Requesters: {}.",
            names(requesters)
        ),
        RequestRefusal::DirectoryUnavailable(e) => directory_unavailable(e),
        RequestRefusal::NotRecorded => {
            "The request could not be recorded (the bot's database failed); nothing was done.".to_owned()
        }
        RequestRefusal::OneAtATime { cluster, existing } => format!(
            "{cluster} already has {} open or running: one at a time per cluster.",
            request_link(existing)
        ),
        RequestRefusal::ReasonRequired { cluster, action } => format!(
            "Nothing was requested: {action} of {cluster} needs a reason. Say why with `--reason \"...\"`, e.g. \
             `/aurora failover {cluster} --reason \"us-east-1 is down\"`."
        ),
        RequestRefusal::TicketRequired {
            cluster,
            action,
            pattern,
        } => format!(
            "Nothing was requested: {action} of {cluster} needs a ticket matching {}. Name it with `--ticket`.",
            code(pattern)
        ),
        RequestRefusal::TicketMismatch {
            cluster,
            action,
            ticket,
            pattern,
        } => format!(
            "Nothing was requested: ticket {} does not match {}, which {action} of {cluster} needs (the whole \
             ticket must match).",
            code(ticket),
            code(pattern)
        ),
    }
}

/// A link to a request's message, or the request's number and channel when it is not posted yet.
fn request_link(l: &RequestLink) -> String {
    match &l.posted {
        Some((domain, ts)) => format!(
            "<https://{domain}.slack.com/archives/{}/p{}|request #{}>",
            l.channel,
            ts.replace('.', ""),
            l.id
        ),
        None => format!("request #{} in <#{}>", l.id, l.channel),
    }
}

fn directory_unavailable(e: &str) -> String {
    format!("Your Slack user groups could not be checked ({e}); try again in a moment.")
}

/// Why a command or click changed nothing, for the person (only them).
pub fn refusal(r: &Refusal) -> String {
    match r {
        Refusal::NoSuchRequest(id) => format!("Request #{id} does not exist."),
        Refusal::OwnRequest => "You cannot approve your own request: a second person must.".to_owned(),
        Refusal::NotApprover(a) => format!("You are not an approver of failover requests. Approvers: {}.", names(a)),
        Refusal::NotAllowedToDeny(a) => format!(
            "Only an approver or the requester can deny a request. Approvers: {}.",
            names(a)
        ),
        Refusal::AlreadyDecided { id, state, by } => format!(
            "Request #{id} was already {}{}.",
            state.as_str(),
            by.as_ref().map(|u| format!(" by {}", person(u))).unwrap_or_default()
        ),
        Refusal::Expired(id) => format!(
            "Request #{id} has expired; nothing was changed. Ask again with /aurora failover if it is still needed."
        ),
        Refusal::NotReady(id) => format!("Request #{id} is still being prepared; try again in a moment."),
        Refusal::DirectoryUnavailable(e) => directory_unavailable(e),
        Refusal::NotAllowedToCancel(a) => format!(
            "Only the requester or an approver can cancel a request. Approvers: {}.",
            names(a)
        ),
        Refusal::AlreadyApproved(id) => {
            format!("Request #{id} is already approved and its run has started: it cannot be cancelled.")
        }
        Refusal::Internal => {
            "Something failed on the bot's side; nothing was changed. Try again, and tell its operators if it persists."
                .to_owned()
        }
        _ => run_refusal(r),
    }
}

/// The refusals about runs (resume, abandon).
fn run_refusal(r: &Refusal) -> String {
    match r {
        Refusal::NoSuchRun(id) => {
            format!("Run {id} does not exist. The run's number is in its thread (\"Needs attention (run N)\").")
        }
        Refusal::NotAllowedToResume(a) => format!(
            "Only a requester or an approver can ask to resume a run. Approvers: {}.",
            names(a)
        ),
        Refusal::NotAllowedToAbandon(a) => format!(
            "Only the requester or an approver can abandon a run. Approvers: {}.",
            names(a)
        ),
        Refusal::NotWaiting { id, state } => format!(
            "Run {id} is {}: only a run that needs attention can be resumed.",
            run_state(*state)
        ),
        Refusal::ResumeAlreadyAsked { id, by } => format!(
            "Resuming run {id} was already asked for by <@{}>; it waits for a second person's approval in the thread.",
            by.as_ref().map(|u| u.as_str()).unwrap_or_default()
        ),
        Refusal::OwnResume(id) => format!("You asked to resume run {id}: a second person must approve it."),
        Refusal::NoResumeAsked(id) => {
            format!("Nobody is asking to resume run {id} right now (it was decided already, or the run moved on).")
        }
        Refusal::RunEnded { id, state } => format!(
            "Run {id} has already ended ({}); nothing was changed.",
            run_state(*state)
        ),
        Refusal::NotAllowedToDenyResume(a) => format!(
            "Only an approver, the person who asked, or the failover's requester can deny a resume. Approvers: {}.",
            names(a)
        ),
        Refusal::NoReason(id) => format!("Say why you abandon run {id}: `/aurora abandon {id} REASON`."),
        Refusal::AlreadyApprovedByYou { id, have, need } => format!(
            "You have already approved request #{id}; one person counts once. {have} of {need} approvals so far."
        ),
        // The request refusals are worded by `refusal`, which sends only these here.
        other => other.to_string(),
    }
}

/// What a command or click did, for the person.
pub fn done(d: &Done) -> String {
    match d {
        Done::Approved(id) => {
            format!("You approved request #{id}. The run has started; follow it in the request's thread.")
        }
        Done::ApprovalCounted { id, have, need } => format!(
            "Your approval of request #{id} is counted: {have} of {need}. The run starts at the {}.",
            ordinal(*need)
        ),
        Done::Denied(id) => format!("You denied request #{id}. Nothing was changed."),
        Done::Cancelled(id) => format!("Request #{id} is cancelled. Nothing was changed."),
        Done::ResumeAsked(id) => {
            format!("You asked to resume run {id}. An approver other than you must approve it in the request's thread.")
        }
        Done::ResumeApproved(id) => format!("You approved resuming run {id}; follow it in the request's thread."),
        Done::ResumeDenied(id) => format!("You denied resuming run {id}; it still needs attention."),
        Done::Abandoned(id) => {
            format!("You abandoned run {id}. The bot does nothing more for it; nothing was changed in AWS to stop it.")
        }
    }
}

/// A later answer to `/aurora failover`, through its response_url: one text, at most
/// `limits::TEXT_MAX` characters (cut at a safe place, saying so, past that).
pub fn answer(a: &Answer) -> String {
    limits::truncate(&answer_text(a), limits::TEXT_MAX)
}

fn answer_text(a: &Answer) -> String {
    match a {
        Answer::NotPrepared {
            id,
            cluster,
            reason: why,
        } => format!(
            "Request #{id} for {cluster} could not be prepared: {}. Nothing was changed.",
            reason(&unplanned(why))
        ),
        Answer::Posted {
            id,
            cluster,
            to,
            mode,
            channel,
            approvers,
            expires_in,
        } => {
            let what = match mode {
                Mode::Rebuild => format!("to rebuild *{cluster}*'s global database with a secondary in {to}"),
                _ => format!("to move *{cluster}* to {to} ({mode})"),
            };
            format!(
                "Request #{id} {what} is posted in <#{channel}> for approval by {}. It expires in {}.",
                names(approvers),
                duration(*expires_in)
            )
        }
        Answer::NoPlan { cluster, reason: why } => {
            format!(
                "Dry run for {cluster}: no plan. {}. Nothing was changed.",
                reason(&unplanned(why))
            )
        }
    }
}

/// A time as Slack shows it in the reader's own time zone, with a UTC fallback.
fn slack_time(t: jiff::Timestamp) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        t.as_second(),
        t.strftime("%Y-%m-%d %H:%M UTC")
    )
}

/// What the mode does, for the approver.
pub fn mode_meaning(mode: Mode) -> &'static str {
    match mode {
        Mode::Detach => {
            "RemoveFromGlobalCluster: the target leaves the global database and becomes a standalone, writable cluster. \
             Replication stops, and the old primary is left as it is, *still writable*: anything still writing to it \
             will diverge (split brain). Data not yet replicated to the target is lost to it."
        }
        Mode::Failover => {
            "FailoverGlobalCluster with AllowDataLoss (managed unplanned failover): the target becomes the writer \
             without waiting for replication, so writes not yet replicated are lost (up to the lag). The global \
             topology is kept: the old primary rejoins as a secondary when its Region is back, and AWS keeps a \
             snapshot of it at the point of failure."
        }
        Mode::Switchover => {
            "SwitchoverGlobalCluster (planned): Aurora waits until the target has caught up, then swaps the roles. \
             No data is lost; writes pause meanwhile, for about as long as the lag. The old primary becomes a secondary."
        }
        Mode::Rebuild => {
            "CreateGlobalCluster from the promoted cluster, then CreateDBCluster and CreateDBInstance in the other \
             Region: the new secondary copies the old primary's settings there and replicates from the promoted \
             cluster. Nothing moves and nothing is lost; the old primary is left as it is."
        }
    }
}

fn stage_line(stage: &Stage, request: &Request, need: usize) -> String {
    match stage {
        // Break-glass: recorded from a terminal, approved by the same step that posts it.
        Stage::AwaitingApproval if request.requested_by.slack().is_none() => {
            ":rotating_light: *Break-glass:* starting without a second approver".to_owned()
        }
        Stage::AwaitingApproval if need > 1 => format!(
            ":hourglass_flowing_sand: *Waiting for approval* ({}) until {}",
            progress(request, need),
            slack_time(request.expires_at)
        ),
        Stage::AwaitingApproval => format!(
            ":hourglass_flowing_sand: *Waiting for approval* until {}",
            slack_time(request.expires_at)
        ),
        Stage::Denied { by, reason: None } => format!(":no_entry: *Denied* by {}", person(by)),
        Stage::Denied { by, reason: Some(why) } => {
            format!(":no_entry: *Denied* by {}: {}", person(by), self::reason(why))
        }
        Stage::Expired if !request.approvals.is_empty() => {
            format!(":hourglass: *Expired* with {}", progress(request, need))
        }
        Stage::Expired => ":hourglass: *Expired* without a decision".to_owned(),
        Stage::Cancelled { by } => format!(":wastebasket: *Cancelled* by {}", person(by)),
        Stage::Running { approved_by, step } => format!(
            ":arrow_forward: {} · *Running:* {}",
            approvals_of(approved_by, request),
            step.label()
        ),
        Stage::Succeeded { approved_by, took } => format!(
            ":white_check_mark: {} · *Completed* in {}",
            approvals_of(approved_by, request),
            duration(*took)
        ),
        Stage::Failed {
            approved_by,
            step,
            reason,
        } => format!(
            ":x: {} · *Failed* at {}: {}",
            approvals_of(approved_by, request),
            step.label(),
            esc(reason)
        ),
        Stage::NeedsAttention {
            approved_by,
            run_id,
            step,
            reason,
        } => format!(
            ":rotating_light: {} · *Needs attention* (run {run_id}) at {}: {}",
            approvals_of(approved_by, request),
            step.label(),
            esc(reason)
        ),
        Stage::Abandoned {
            approved_by,
            by,
            reason,
        } => format!(
            ":octagonal_sign: {} · *Abandoned* by {}: {}",
            approvals_of(approved_by, request),
            person(by),
            esc(reason)
        ),
    }
}

/// The request message: the approval request while pending, then where it stands.
fn check_icon(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => ":white_check_mark:",
        Outcome::Warn => ":warning:",
        Outcome::Fail => ":x:",
    }
}

/// The part of a request that is the plan itself: mode and cost, target, checklist, DNS, steps.
fn plan_sections(plan: &Plan) -> Vec<Value> {
    let dns = |before: &Option<String>| match (before, &plan.dns_before.unreadable) {
        (Some(v), _) => esc(v),
        (None, Some(_)) => "(could not be read)".to_owned(),
        (None, None) => "(missing)".to_owned(),
    };
    let steps: String = plan
        .steps()
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {}\n", i + 1, esc(s)))
        .collect();
    let mode = if plan.mode_proposed {
        format!(
            "*Mode:* `{}`, proposed by the bot because it loses no data. {}",
            plan.mode,
            mode_meaning(plan.mode)
        )
    } else {
        format!("*Mode:* `{}`. {}", plan.mode, mode_meaning(plan.mode))
    };
    let mut out = limits::sections(&mode);
    if let Some(reason) = &plan.target_reason {
        out.extend(limits::sections(&format!("*Target:* {}", esc(reason))));
    }
    if !plan.checks.is_empty() {
        let checks: String = plan
            .checks
            .iter()
            .map(|c| format!("{} *{}*: {}\n", check_icon(c.outcome), c.name, esc(&c.detail)))
            .collect();
        // Slack takes at most 3,000 characters a section: a long checklist goes on over several, in order.
        out.extend(limits::sections(&format!(
            "*Pre-flight checks* (run again right before the first change)\n{checks}"
        )));
    }
    let global = if plan.follows_global(plan.dns_before.writer.as_deref()) {
        " (the global writer endpoint)"
    } else {
        ""
    };
    let after = if plan.writer_follows() {
        format!(
            "`{}` follows the writer and is left alone: AWS moves the global writer endpoint to `{}`. `{}` will point at `{}`'s reader endpoint.",
            esc(&plan.writer_record),
            esc(&plan.to.cluster_id),
            esc(&plan.reader_record),
            esc(&plan.to.cluster_id)
        )
    } else {
        format!("Both will point at `{}`'s endpoints.", esc(&plan.to.cluster_id))
    };
    out.extend(limits::sections(&format!(
        "*DNS* (zone `{}`, TTL {}s), at request time:\n• `{}` → `{}`{global}\n• `{}` → `{}`\n{after}",
        esc(&plan.zone_id),
        plan.record_ttl,
        esc(&plan.writer_record),
        dns(&plan.dns_before.writer),
        esc(&plan.reader_record),
        dns(&plan.dns_before.reader),
    )));
    out.extend(limits::sections(&format!("*Plan*\n{steps}")));
    out
}

fn route(plan: &Plan) -> String {
    format!(
        "*From* {} `{}` → *To* {} `{}`",
        plan.from.region,
        esc(&plan.from.cluster_id),
        plan.to.region,
        esc(&plan.to.cluster_id),
    )
}

/// The request message: the approval request while pending, then where it stands.
/// `policy` is the request's (its cluster's and mode's); `mention` is whom `[clusters.notify]`
/// mentions while the request waits for approval.
pub fn request_message(
    request: &Request,
    plan: &Plan,
    stage: &Stage,
    policy: &Policy,
    mention: &[Principal],
) -> MessageBody {
    let title = match &plan.rebuild {
        Some(_) => format!(
            "Rebuild request #{}: {} in {}",
            request.id, plan.cluster, plan.to.region
        ),
        None => format!(
            "Failover request #{}: {} to {} ({})",
            request.id, plan.cluster, plan.to.region, plan.mode
        ),
    };
    let asks = match &plan.rebuild {
        Some(r) => format!(
            "{} asks to rebuild *{}*'s cross-Region protection after its detach (request #{}): new global cluster \
             `{}` from {} `{}`, new secondary {} `{}`",
            person(&request.requested_by),
            plan.cluster,
            r.detach_request,
            esc(&r.global_cluster_id),
            plan.from.region,
            esc(&plan.from.cluster_id),
            plan.to.region,
            esc(&plan.to.cluster_id),
        ),
        None => format!(
            "{} asks to move the writer of *{}* (`{}`)\n{}",
            person(&request.requested_by),
            plan.cluster,
            esc(&plan.global_cluster_id),
            route(plan)
        ),
    };
    let mut blocks = vec![
        header(&title),
        section(&stage_line(stage, request, policy.approvals_required)),
        section(&asks),
    ];
    if let Some(why) = reason_and_ticket(request) {
        blocks.push(section(&why));
    }
    let awaiting = *stage == Stage::AwaitingApproval && request.requested_by.slack().is_some();
    let cc = (awaiting && !mention.is_empty()).then(|| format!("cc {}", names(mention)));
    if let Some(cc) = &cc {
        blocks.push(section(cc));
    }
    blocks.extend(plan_sections(plan));
    // A break-glass request gets no buttons: nobody approves it in Slack.
    if awaiting {
        blocks.push(decision_buttons(request, plan));
        blocks.push(context(&approvers_line(request, policy)));
    }
    let mut text = format!("{title}: {}", plain_stage(stage));
    if let Some(cc) = cc {
        text.push_str(&format!(" ({cc})"));
    }
    limits::fit(MessageBody { text, blocks })
}

/// The Approve and Deny buttons of a pending request, Approve with a confirmation naming what it
/// does and costs.
fn decision_buttons(request: &Request, plan: &Plan) -> serde_json::Value {
    let consequence = match plan.mode {
        Mode::Detach => "Replication stops and the old primary stays writable.",
        Mode::Failover => "Writes not yet replicated to the target are lost.",
        Mode::Switchover => "Writes pause until the target has caught up; nothing is lost.",
        Mode::Rebuild => "The writer does not move; new clusters are created (and billed).",
    };
    let (question, what) = match plan.mode {
        Mode::Rebuild => (
            "Approve this rebuild?",
            format!("Rebuild *{}* with a new secondary in {}.", plan.cluster, plan.to.region),
        ),
        _ => (
            "Approve this failover?",
            format!(
                "Move the writer of *{}* to {} by *{}*.",
                plan.cluster, plan.to.region, plan.mode
            ),
        ),
    };
    let confirm = json!({
        "title": {"type": "plain_text", "text": question},
        "text": {"type": "mrkdwn", "text": format!("{what} {consequence}")},
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "danger"
    });
    json!({
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {"type": "button", "action_id": APPROVE, "text": {"type": "plain_text", "text": "Approve"},
             "value": request.id.to_string(), "style": "danger", "confirm": confirm},
            {"type": "button", "action_id": DENY, "text": {"type": "plain_text", "text": "Deny"},
             "value": request.id.to_string()}
        ]
    })
}

/// The request's `--reason` and `--ticket`, if it gave either.
fn reason_and_ticket(request: &Request) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(r) = &request.reason {
        parts.push(format!("*Reason:* {}", esc(r)));
    }
    if let Some(t) = &request.ticket {
        parts.push(format!("*Ticket:* {}", code(t)));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// Who may approve a pending request, how many must, and when it expires.
fn approvers_line(request: &Request, policy: &Policy) -> String {
    let how_many = match policy.approvals_required {
        1 => String::new(),
        n => format!(
            " *{n} different approvers* must approve ({} so far); one person counts once.",
            request.approvals.len()
        ),
    };
    format!(
        "Approvers: {}.{how_many} The requester cannot approve their own request. Expires {}.",
        names(&policy.approvers),
        slack_time(request.expires_at)
    )
}

/// The answer to `/aurora pending`: each open request the person may act on (what, who asked, how
/// old, how long left, a link to its message) with its buttons ([`PENDING_APPROVE`] and
/// [`PENDING_DENY`], value: the request's id); or, with none, that there is nothing and who may ask.
pub fn pending(list: &PendingList) -> MessageBody {
    if list.items.is_empty() {
        let text = format!(
            "Nothing you may act on: no open failover request waits for your decision. Who may request one with `/aurora failover CLUSTER`: {}.",
            names(&list.requesters)
        );
        return limits::fit(MessageBody {
            text: text.clone(),
            blocks: vec![section(&text)],
        });
    }
    let title = match list.items.len() {
        1 => "1 open request you may act on".to_owned(),
        n => format!("{n} open requests you may act on"),
    };
    let mut blocks = vec![header(&title)];
    for item in &list.items {
        blocks.push(section(&pending_line(item, list.now)));
        blocks.push(pending_buttons(item));
    }
    blocks.push(context(
        "Deny asks for a reason, posted in the request's thread. Each button checks the request again when you click it.",
    ));
    limits::fit(MessageBody { text: title, blocks })
}

/// One request in the `/aurora pending` list.
fn pending_line(item: &Actionable, now: jiff::Timestamp) -> String {
    let r = &item.request;
    let plan = r.stored_plan::<Plan>().ok().flatten();
    let target = plan
        .as_ref()
        .map(|p| p.to.region.to_string())
        .or_else(|| r.to_region.as_ref().map(ToString::to_string))
        .unwrap_or_else(|| "a Region to be chosen".to_owned());
    let mode = r
        .mode
        .map_or_else(|| "mode not chosen yet".to_owned(), |m| format!("`{m}`"));
    let since = |a: jiff::Timestamp, b: jiff::Timestamp| duration(b.duration_since(a).unsigned_abs());
    let yours = match item.role {
        Role::Approver => String::new(),
        Role::Requester => " (yours: you may withdraw it)".to_owned(),
        Role::Counted => " (your approval is counted: you may still deny it)".to_owned(),
    };
    let progress = match item.need {
        1 => String::new(),
        need => format!(" · {}", progress(r, need)),
    };
    format!(
        "*{}*: *{}* to {target} ({mode}) · asked by {} {} ago{progress} · expires in {}{yours}",
        request_link(&item.link),
        r.cluster,
        person(&r.requested_by),
        since(r.requested_at, now),
        since(now, r.expires_at),
    )
}

/// The buttons of one request in the `/aurora pending` list.
fn pending_buttons(item: &Actionable) -> Value {
    let r = &item.request;
    let id = r.id.to_string();
    let deny = |label: &str| {
        json!({"type": "button", "action_id": PENDING_DENY, "value": id,
               "text": {"type": "plain_text", "text": label}})
    };
    let elements = match item.role {
        Role::Approver => {
            let mode = r
                .mode
                .map_or_else(|| "the mode in its plan".to_owned(), |m| format!("*{m}*"));
            let starts = match item.need.saturating_sub(r.approvals.len()) {
                0 | 1 => "The run starts at once.".to_owned(),
                more => format!("Your approval is counted; the run starts after {} more.", more - 1),
            };
            let confirm = json!({
                "title": {"type": "plain_text", "text": "Approve this failover?"},
                "text": {"type": "mrkdwn", "text": format!(
                    "Approve request #{} to move the writer of *{}* by {mode}. {starts}", r.id, r.cluster)},
                "confirm": {"type": "plain_text", "text": "Approve"},
                "deny": {"type": "plain_text", "text": "Cancel"},
                "style": "danger"
            });
            vec![
                json!({"type": "button", "action_id": PENDING_APPROVE, "value": id, "style": "danger",
                       "text": {"type": "plain_text", "text": "Approve"}, "confirm": confirm}),
                deny("Deny"),
            ]
        }
        Role::Requester => vec![deny("Withdraw")],
        Role::Counted => vec![deny("Deny")],
    };
    json!({"type": "actions", "block_id": format!("pending:{}", r.id), "elements": elements})
}

/// The deny-reason modal (a Block Kit modal view, https://api.slack.com/reference/surfaces/views):
/// callback [`DENY_REASON_VIEW`], `private_metadata` the request's id, one required multi-line
/// `plain_text_input` ([`REASON_BLOCK`] / [`REASON_ACTION`]). For `views.open`.
pub fn deny_reason_modal(request: &Request, role: Role) -> Value {
    // Titles and button labels hold at most 24 characters.
    let (title, submit, intro) = match role {
        Role::Approver | Role::Counted => ("Deny request", "Deny", "You are denying"),
        Role::Requester => ("Withdraw request", "Withdraw", "You are withdrawing"),
    };
    // The request's number in the title when it fits whole; never cut.
    let titled = Some(format!("{title} #{}", request.id))
        .filter(|t| t.chars().count() <= 24)
        .unwrap_or_else(|| title.to_owned());
    let what = format!(
        "{intro} request #{}: *{}* ({}), asked by {}. Your reason is posted in the request's thread and kept in its history.",
        request.id,
        request.cluster,
        request.mode.map_or("mode not chosen yet", Mode::as_str),
        person(&request.requested_by),
    );
    json!({
        "type": "modal",
        "callback_id": DENY_REASON_VIEW,
        "private_metadata": request.id.to_string(),
        "title": {"type": "plain_text", "text": titled},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(&what),
            {"type": "input", "block_id": REASON_BLOCK,
             "label": {"type": "plain_text", "text": "Reason"},
             "element": {"type": "plain_text_input", "action_id": REASON_ACTION, "multiline": true,
                         "max_length": REASON_MAX,
                         "placeholder": {"type": "plain_text", "text": "Why, for the thread and the history"}}}
        ]
    })
}

/// The longest deny reason the modal takes, in characters.
pub const REASON_MAX: usize = 500;

/// A `view_submission` answer keeping the deny-reason modal open with `why` under its reason input
/// (`response_action: "errors"`, https://api.slack.com/surfaces/modals#displaying_errors).
fn modal_error(why: &str) -> Value {
    json!({"response_action": "errors", "errors": {REASON_BLOCK: why}})
}

/// The deny-reason modal submitted with no reason (or only spaces).
pub fn reason_required() -> Value {
    modal_error("Say why: the reason is posted in the request's thread.")
}

/// The deny-reason modal submitted, but nothing was decided: why, in plain text (a modal's error
/// shows no mrkdwn).
pub fn modal_refusal(r: &Refusal) -> Value {
    let text = match r {
        Refusal::NoSuchRequest(id) => format!("Request #{id} does not exist."),
        Refusal::Expired(id) => format!("Request #{id} has expired; nothing was changed."),
        Refusal::AlreadyDecided { id, state, .. } => {
            format!("Request #{id} was already {}; nothing was changed.", state.as_str())
        }
        Refusal::NotReady(id) => format!("Request #{id} is still being prepared; try again in a moment."),
        Refusal::NotAllowedToDeny(_) => "Only an approver or the requester can deny a request.".to_owned(),
        Refusal::DirectoryUnavailable(_) => {
            "Your Slack user groups could not be checked; try again in a moment.".to_owned()
        }
        other => format!("Nothing was changed: {other}."),
    };
    modal_error(&text)
}

/// The deny-reason modal could not be opened (Slack refused `views.open`, e.g. the click's trigger
/// expired): what to do instead.
pub fn reason_modal_unavailable(id: RequestId) -> String {
    format!(
        "The form for a reason could not be opened; nothing was changed. Click Deny again, or use `/aurora cancel {id}` (the requester or an approver)."
    )
}

/// A dry run's answer: the plan and its checklist, nothing requested.
pub fn plan_preview(plan: &Plan) -> MessageBody {
    let title = format!("Dry run: {} to {} ({})", plan.cluster, plan.to.region, plan.mode);
    let mut blocks = vec![
        header(&title),
        section(&format!(
            "Nothing was requested or changed. This is what `/aurora failover {} --to {} --mode {}` would ask to do:\n{}",
            plan.cluster,
            plan.to.region,
            plan.mode,
            route(plan)
        )),
    ];
    blocks.extend(plan_sections(plan));
    limits::fit(MessageBody { text: title, blocks })
}

fn plain_stage(stage: &Stage) -> &'static str {
    match stage {
        Stage::AwaitingApproval => "waiting for approval",
        Stage::Denied { .. } => "denied",
        Stage::Expired => "expired",
        Stage::Cancelled { .. } => "cancelled",
        Stage::Running { .. } => "running",
        Stage::Succeeded { .. } => "completed",
        Stage::Failed { .. } => "failed",
        Stage::NeedsAttention { .. } => "needs attention",
        Stage::Abandoned { .. } => "abandoned",
    }
}

/// The ephemeral answer to `/aurora abandon`: what abandoning does, and a button to confirm it.
/// `what` names the run; `reason` is the person's, shown escaped.
pub fn abandon_confirmation(run: RunId, what: &AbandonTarget, reason: &str) -> Value {
    // A button's value holds at most 2,000 characters, after JSON escaping.
    let mut reason: String = reason.chars().take(1_000).collect();
    let value = loop {
        let value = serde_json::to_string(&AbandonValue {
            run: run.get(),
            reason: reason.clone(),
        })
        .unwrap_or_default();
        if value.chars().count() <= 2_000 {
            break value;
        }
        let keep = reason.chars().count() * 3 / 4;
        reason = reason.chars().take(keep).collect();
    };
    let what = format!(
        "run {} ({} failover, request #{}, {})",
        what.run,
        what.cluster,
        what.request,
        run_state(what.state)
    );
    let text = format!(
        "Abandon {}? The bot stops its remaining steps and changes nothing in AWS (an operation AWS is already \
         running goes on); the cluster is free for a new request. Reason: {}",
        esc(&what),
        esc(&reason)
    );
    let body = limits::fit(MessageBody {
        text: text.clone(),
        blocks: vec![
            section(&text),
            json!({"type": "actions", "block_id": "abandon", "elements": [
                {"type": "button", "action_id": ABANDON_CONFIRM, "style": "danger",
                 "text": {"type": "plain_text", "text": format!("Abandon run {run}")}, "value": value}
            ]}),
        ],
    });
    json!({"response_type": "ephemeral", "text": body.text, "blocks": body.blocks})
}

/// The commands a person types to decide about run `run_id`.
fn decide_commands(run_id: RunId) -> String {
    format!(
        "`/aurora resume {run_id}` to let the bot finish (a second person approves), or `/aurora abandon {run_id} REASON` \
         to stop it here (nothing more is changed in AWS)"
    )
}

/// A reply in a run's thread, within Slack's limits.
pub fn note(note: &Note) -> MessageBody {
    limits::fit(note_body(note))
}

/// A reply in the request's thread that mentions `mention` (`[clusters.notify] attention`, when a run
/// needs attention): first, in the text Slack notifies with, and as the reply's last section.
pub fn note_mentioning(note: &Note, mention: &[Principal]) -> MessageBody {
    let mut body = note_body(note);
    if !mention.is_empty() {
        let cc = format!("cc {}", names(mention));
        body.text = format!("{cc}: {}", body.text);
        body.blocks.push(section(&cc));
    }
    limits::fit(body)
}

fn note_body(note: &Note) -> MessageBody {
    let text = match note {
        Note::ResumeAsked {
            run_id,
            token,
            by,
            target,
            stopped,
        } => return resume_asked(*run_id, *token, by, target.as_ref(), stopped.as_ref()),
        Note::Approved { by } => format!(":white_check_mark: Approved by {}. Starting the run.", person(by)),
        Note::ApprovalCounted { by, have, need } => format!(
            ":ballot_box_with_check: Approved by {} ({have} of {need}). Waiting for {} more.",
            person(by),
            need - have
        ),
        Note::Denied { by, reason: None } => format!(":no_entry: Denied by {}. Nothing was changed.", person(by)),
        // The reason ends the line as typed: a sentence after it could double its punctuation.
        Note::Denied { by, reason: Some(why) } => format!(
            ":no_entry: Denied by {}: {}\nNothing was changed.",
            person(by),
            self::reason(why)
        ),
        Note::Cancelled { by } => format!(":wastebasket: Cancelled by {}. Nothing was changed.", person(by)),
        Note::BreakGlass { by, reason, aws_caller } => format!(
            ":rotating_light: *Break-glass:* started by {} without a second approver, as AWS identity `{}`; the pre-flight checks ran as for any request. Reason: {}",
            person(by),
            esc(aws_caller),
            esc(reason)
        ),
        Note::Expired => ":hourglass: The request expired without a decision. Nothing was changed.".to_owned(),
        Note::StepStarted { .. } | Note::StepWaiting { .. } | Note::StepStopped { .. } | Note::StepFinished { .. } => {
            step_reply(note)
        }
        Note::Observed { detail } => format!(":eyes: {}", esc(detail)),
        Note::TakenOver { by, from, step } if by.split(' ').next() == Some(from.as_str()) => format!(
            ":arrows_counterclockwise: *{}* took the run up again after a restart, at step _{}_; it checks with AWS what a call it had started did before making any call again.",
            esc(by),
            step.label()
        ),
        Note::TakenOver { by, from, step } => format!(
            ":arrows_counterclockwise: *{}* took the run over from *{}*, which stopped renewing its lease, at step _{}_; it checks with AWS what a call already started did before making any call again.",
            esc(by),
            esc(from),
            step.label()
        ),
        Note::Retrying { detail } => format!(":warning: {}", esc(detail)),
        Note::Completed(c) => completed(c),
        Note::NeedsAttention(a) => needs_attention(a),
        Note::HandedOver { run_id, why } => format!(
            ":raising_hand: The bot will not finish run {run_id} by itself: {}. A person decides: {}.",
            reason(why),
            decide_commands(*run_id)
        ),
        Note::LateFinish { detail } => format!(":arrow_forward: {}", esc(detail)),
        Note::ResumeDecided { run_id, by, approved } => resume_decided(*run_id, by, *approved),
        Note::Abandoned {
            run_id,
            by,
            reason,
            still_running,
            state_now,
        } => abandoned(*run_id, by, reason, still_running.as_deref(), state_now.as_ref()),
        Note::Failed(f) => format!(
            ":x: *Failover failed* at *{}*: {}\n• Cluster now: {}\n• DNS now: {} ({})",
            f.step.label(),
            esc(&f.reason),
            esc(&f.cluster_now),
            esc(&f.dns_now),
            dns_touched(f.dns_touched)
        ),
    };
    MessageBody { text, blocks: vec![] }
}

/// A step's one reply, as it stands: started, waiting, stopped or done (empty for any other note).
fn step_reply(note: &Note) -> String {
    match note {
        Note::StepStarted { step, detail } => {
            format!(":arrow_forward: *{}*: {}", step.label(), esc(detail))
        }
        Note::StepWaiting {
            step,
            intro,
            now,
            events,
        } => {
            let now = now.as_deref().map(|n| format!("\nNow: {}", esc(n))).unwrap_or_default();
            format!(
                ":hourglass_flowing_sand: *{}*: {}{now}{}",
                step.label(),
                esc(intro),
                bullets(events)
            )
        }
        Note::StepStopped { step, why, events } => format!(
            ":double_vertical_bar: *{}*: stopped: {}{}",
            step.label(),
            esc(why),
            bullets(events)
        ),
        Note::StepFinished {
            step,
            detail,
            took,
            events,
        } => {
            format!(
                ":heavy_check_mark: *{}* ({}): {}{}",
                step.label(),
                duration(*took),
                esc(detail),
                bullets(events)
            )
        }
        _ => String::new(),
    }
}

/// Lines under a step's reply, one bullet each (nothing when there are none).
fn bullets(lines: &[String]) -> String {
    lines.iter().map(|l| format!("\n• {}", esc(l))).collect()
}

fn dns_touched(touched: bool) -> &'static str {
    if touched {
        "this run changed it, or may have"
    } else {
        "this run did not change it"
    }
}

/// Someone asks to resume a run: what resuming does, why the run stopped, and the buttons.
fn resume_asked(
    run_id: RunId,
    token: i64,
    by: &SlackUserId,
    target: Option<&ResumeTarget>,
    stopped: Option<&(Step, String)>,
) -> MessageBody {
    let what = target.map_or_else(
        || "The bot checks that the target is writable, then moves the CNAMEs.".to_owned(),
        |t| {
            format!(
                "The bot goes on from where it stopped: it checks that {} ({}) is writable, then moves {} and {} \
                 to it, even where its own re-check would not.",
                t.cluster_id, t.region, t.writer_record, t.reader_record
            )
        },
    );
    let why = stopped
        .map(|(step, why)| {
            format!(
                " It stopped at {}: {}.",
                step.label(),
                why.trim_end().trim_end_matches('.')
            )
        })
        .unwrap_or_default();
    let value = format!("{run_id}:{token}");
    let text = format!(
        ":raised_hand: {} asks to resume run {run_id}. {}\nA second person (an approver, not {}) must approve.",
        user(by),
        esc(&format!("{what}{why}")),
        user(by)
    );
    let blocks = vec![
        section(&text),
        json!({
            "type": "actions",
            "block_id": "resume",
            "elements": [
                {"type": "button", "action_id": RESUME_APPROVE, "style": "danger",
                 "text": {"type": "plain_text", "text": "Approve resume"}, "value": value,
                 "confirm": {
                    "title": {"type": "plain_text", "text": "Resume this run?"},
                    "text": {"type": "mrkdwn", "text": "The bot re-checks that the target is writable, then moves the CNAMEs to it."},
                    "confirm": {"type": "plain_text", "text": "Resume"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger"}},
                {"type": "button", "action_id": RESUME_DENY,
                 "text": {"type": "plain_text", "text": "Deny"}, "value": value}
            ]
        }),
    ];
    MessageBody { text, blocks }
}

fn resume_decided(run_id: RunId, by: &SlackUserId, approved: bool) -> String {
    if approved {
        format!(
            ":arrow_forward: {} approved resuming run {run_id}: the bot checks that the target is writable and moves DNS.",
            user(by)
        )
    } else {
        format!(
            ":no_entry: {} denied resuming run {run_id}; it still needs attention.",
            user(by)
        )
    }
}

/// The last reply of a successful run: the CNAMEs, the phases, and what to know and do now.
fn completed(c: &Completion) -> String {
    let phases = c
        .phases
        .iter()
        .filter(|(s, _)| *s != Step::Done)
        .map(|(s, d)| format!("{} {}", s.label(), duration(*d)))
        .collect::<Vec<_>>()
        .join(" · ");
    // A planned switchover is not a failover; a managed failover and a detach are.
    let what = match &c.after {
        Some(Aftermath::SwitchedOver { .. }) => "Switchover",
        Some(Aftermath::Rebuilt(r)) => return rebuild_completed(c, r),
        _ => "Failover",
    };
    let follows = c
        .writer_follows
        .as_deref()
        .map(|to| format!(" (the global writer endpoint: follows the writer, now `{}`)", esc(to)))
        .unwrap_or_default();
    let mut text = format!(
        ":tada: *{what} complete* in {}.\n• `{}` → `{}`{follows}\n• `{}` → `{}`\nPhases: {}",
        duration(c.total),
        esc(&c.writer_record),
        esc(&c.writer_endpoint),
        esc(&c.reader_record),
        esc(&c.reader_endpoint),
        phases,
    );
    if let Some(after) = c.writes_through_cname {
        text.push_str(&format!(
            "\n• Writes possible through `{}` {} after the DNS change (database probe)",
            esc(&c.writer_record),
            duration(after)
        ));
    }
    for line in c.after.iter().flat_map(|a| aftermath(a, &c.old_primary)) {
        text.push('\n');
        text.push_str(&line);
    }
    text
}

/// A run stopped for a person: where and why, how things are, and what happens next.
fn needs_attention(a: &Attention) -> String {
    let mut text = format!(
        ":rotating_light: *Needs attention* (run {}) at *{}*: {}\n• Cluster now: {}\n• DNS now: {} ({})",
        a.run_id,
        a.step.label(),
        esc(&a.reason),
        esc(&a.cluster_now),
        esc(&a.dns_now),
        dns_touched(a.dns_touched)
    );
    for g in &a.guidance {
        text.push_str("\n• ");
        text.push_str(&esc(g));
    }
    if let Some(op) = &a.operation {
        text.push_str("\n• ");
        text.push_str(&operation_seen(op));
    }
    text.push_str(&format!(
        "\nThe bot keeps watching, every {}. ",
        duration(a.watch_every)
    ));
    match a.window_until {
        Some(until) => text.push_str(&format!(
            "If everything is ready again before {} (the target writable, and the old primary not writable or \
             unreachable), it finishes by itself. Otherwise a person decides: {}.",
            slack_time(until),
            decide_commands(a.run_id)
        )),
        None => text.push_str(&format!("A person decides: {}.", decide_commands(a.run_id))),
    }
    text
}

/// The managed operation of a run that needs attention, as last read.
fn operation_seen(op: &OperationSeen) -> String {
    match op {
        OperationSeen::Running { mode, state, cluster } => format!(
            "AWS is still running the {mode} ({}): {} follows it.",
            esc(state),
            ident(&format!("/aurora status {cluster}"))
        ),
        OperationSeen::Idle { writer } => format!("No operation is in progress; the writer is {}.", esc(writer)),
        OperationSeen::Unread { mode, cluster } => format!(
            "Whether AWS is still running the {mode} could not be read: {} shows it.",
            ident(&format!("/aurora status {cluster}"))
        ),
    }
}

/// A person stopped the run: who and why, how things are left, and what AWS still runs.
fn abandoned(
    run_id: RunId,
    by: &Person,
    reason: &str,
    still_running: Option<&str>,
    state_now: Option<&(String, String)>,
) -> String {
    let mut text = format!(
        ":octagonal_sign: Run {run_id} *abandoned* by {}: {}. The bot does nothing more for it and changed nothing \
         in AWS to stop it; the cluster is free for another request.",
        person(by),
        self::reason(reason)
    );
    if let Some((cluster, dns)) = state_now {
        text.push_str(&format!("\n• Cluster now: {}\n• DNS now: {}", esc(cluster), esc(dns)));
    }
    if let Some(op) = still_running {
        text.push_str(&format!(
            "\n:warning: Not stopped by abandoning: {}. Follow it with `/aurora status` (or \
             `aws rds describe-global-clusters`).",
            self::reason(op)
        ));
    }
    text
}

/// The last reply of a successful rebuild.
fn rebuild_completed(c: &Completion, r: &crate::runbook::report::Rebuilt) -> String {
    let phases = c
        .phases
        .iter()
        .map(|(s, d)| format!("{} {}", s.label(), duration(*d)))
        .collect::<Vec<_>>()
        .join(" · ");
    let mut text = format!(
        ":tada: *Rebuild complete* in {}. Global cluster {}: primary {}, secondary {} in {}, replicating.\nPhases: \
         {phases}",
        duration(c.total),
        ident(&r.global_cluster_id),
        ident(&r.primary),
        ident(&r.secondary),
        r.region
    );
    for line in rebuilt(r) {
        text.push_str("\n• ");
        text.push_str(&line);
    }
    text
}

/// The command that moves the writer of `cluster` back to the old primary's Region.
fn fail_back_command(cluster: &str, old: &crate::ports::Member) -> String {
    ident(&format!(
        "/aurora failover {cluster} --to {} --mode switchover",
        old.region
    ))
}

/// What to know and do after a successful run, one line each; `old` is the old primary.
fn aftermath(after: &Aftermath, old: &crate::ports::Member) -> Vec<String> {
    let (old_id, old_region) = (ident(&old.cluster_id), esc(old.region.as_str()));
    match after {
        Aftermath::Detached { cluster, promoted } => vec![
            format!(
                ":warning: The old primary {old_id} ({old_region}) was not touched and *may still accept writes* (split \
                 brain). Fence it now: stop every writer that connects to it directly, or make it read-only (for example \
                 its cluster parameter `default_transaction_read_only` or `read_only`), so that only the new writer takes \
                 writes."
            ),
            format!(
                "Protect it again: {} is now a standalone cluster that nothing replicates. Once {old_region} is healthy, \
                 {} makes it the primary of a new global database with a new secondary in {old_region} (a second \
                 person approves); after that, {} moves the writer back with no data loss.",
                ident(promoted),
                ident(&format!("/aurora rebuild {cluster} --in {}", old.region)),
                fail_back_command(cluster, old)
            ),
        ],
        Aftermath::FailedOver {
            cluster,
            rejoined,
            snapshot,
        } => failed_over(cluster, *rejoined, snapshot.as_deref(), old),
        Aftermath::SwitchedOver { cluster } => vec![format!(
            "{old_id} ({old_region}) is now a secondary. To switch back: {}.",
            fail_back_command(cluster, old)
        )],
        Aftermath::Rebuilt(r) => rebuilt(r),
    }
}

/// After a rebuild: the config change that makes it permanent, and the old primary, with the commands
/// to remove it once the team is sure (the bot never deletes it).
fn rebuilt(r: &crate::runbook::report::Rebuilt) -> Vec<String> {
    let region = r.region.as_str();
    let mut delete = Vec::new();
    if r.old_deletion_protection {
        delete.push(format!(
            "aws rds modify-db-cluster --region {region} --db-cluster-identifier {} --no-deletion-protection",
            r.old_primary
        ));
    }
    delete.push(format!(
        "aws rds remove-from-global-cluster --region {region} --global-cluster-identifier {} --db-cluster-identifier {}",
        r.old_global_cluster_id, r.old_primary_arn
    ));
    for i in &r.old_instances {
        delete.push(format!(
            "aws rds delete-db-instance --region {region} --db-instance-identifier {i}"
        ));
    }
    delete.push(format!(
        "aws rds delete-db-cluster --region {region} --db-cluster-identifier {0} --final-db-snapshot-identifier {0}-final",
        r.old_primary
    ));
    delete.push(format!(
        "aws rds delete-global-cluster --region {region} --global-cluster-identifier {}",
        r.old_global_cluster_id
    ));
    vec![
        format!(
            "{} is recorded as {}'s global cluster; status and runs follow it. Make it permanent: set \
             `global_cluster_id = \"{}\"` in {}'s `[[clusters]]` entry (the record is then dropped).",
            ident(&r.global_cluster_id),
            esc(&r.cluster),
            esc(&r.global_cluster_id),
            esc(&r.cluster)
        ),
        format!(
            ":warning: The old primary {} ({region}) is left as it was, in {}: the bot never deletes it. Once you \
             are sure nothing needs it (its data diverged at the detach), remove it with a final snapshot:\n```{}```",
            ident(&r.old_primary),
            ident(&r.old_global_cluster_id),
            delete.join("\n")
        ),
    ]
}

/// After a managed failover: whether the old primary rejoined, the point-of-failure snapshot, failing back.
fn failed_over(cluster: &str, rejoined: bool, snapshot: Option<&str>, old: &crate::ports::Member) -> Vec<String> {
    let (old_id, old_region) = (ident(&old.cluster_id), esc(old.region.as_str()));
    vec![
        if rejoined {
            format!("{old_id} ({old_region}) has rejoined the global cluster as a secondary.")
        } else {
            format!(
                ":warning: {old_id} ({old_region}) has not rejoined yet: Aurora rebuilds it as a secondary when \
                 {old_region} is healthy. Until then its writes are fenced only on a best-effort basis: keep \
                 applications off it."
            )
        },
        match snapshot {
            Some(name) => format!(
                ":camera: Point-of-failure snapshot: {} in {old_region}. It holds the writes this failover lost; copy \
                 it to keep it (it expires with the cluster's backup retention).",
                ident(name)
            ),
            None => format!(
                ":camera: When {old_region} recovers, AWS snapshots the old primary's volume at the point of failure \
                 as {} in {old_region}: it holds the writes this failover lost; copy it to keep it.",
                ident(&format!("rds:unplanned-global-failover-{}-<time>", old.cluster_id))
            ),
        },
        format!(
            "To fail back once {old_id} has rejoined: {} (no data loss).",
            fail_back_command(cluster, old)
        ),
    ]
}

fn member_detail(m: &crate::status::MemberReport, should_write: bool) -> String {
    match &m.state {
        Ok(c) => format!(
            "{}{} · engine {}{}{}{} · endpoint `{}` · reader `{}`",
            esc(&c.status),
            if should_write && !c.has_writer {
                " (no writer instance!)"
            } else {
                ""
            },
            esc(&c.engine_version),
            m.lag_ms
                .map(|l| format!(" · lag {}", crate::runbook::plan::lag_text(l)))
                .unwrap_or_default(),
            match m.member.sync.as_deref() {
                Some(s) if s != "connected" => format!(" · sync {}", esc(s)),
                _ => String::new(),
            },
            match c.write_forwarding.as_deref() {
                Some(f) if !m.member.is_writer && f != "disabled" => format!(" · write forwarding {}", esc(f)),
                _ => String::new(),
            },
            esc(c.endpoint.as_deref().unwrap_or("-")),
            esc(c.reader_endpoint.as_deref().unwrap_or("-")),
        ),
        Err(e) => format!(":warning: cannot read: {}", esc(e)),
    }
}

/// Most posts one `/aurora status` answer takes: Slack takes at most 5 posts on a command's
/// response_url, and one is kept spare.
pub const STATUS_POSTS: usize = 4;

/// The answer to `/aurora status`, as one to [`STATUS_POSTS`] messages to post in order, each within
/// Slack's limits: for several clusters a summary first (how many, which need attention and why),
/// then each cluster's detail, in full when it all fits, else briefer (members without endpoints);
/// past the last post, the clusters left out are named with a pointer to `/aurora status CLUSTER`.
pub fn status(reports: &[ClusterReport]) -> Vec<MessageBody> {
    let summary = if reports.len() > 1 {
        limits::sections(&status_summary(reports))
    } else {
        vec![]
    };
    let full: Vec<String> = reports.iter().map(|r| cluster_status(r).join("\n")).collect();
    let brief: Vec<String> = reports.iter().map(|r| cluster_brief(r).join("\n")).collect();
    for details in [&full, &brief] {
        let pages = limits::pages([summary.clone(), packed_sections(details.clone())].concat());
        if pages.len() <= STATUS_POSTS {
            return status_bodies(reports, pages);
        }
    }
    // Too many even briefly: as many clusters as fit (found by bisection: fewer shown never takes
    // more posts), then the others by name.
    let paged = |shown: usize| {
        let left: Vec<&str> = reports[shown..].iter().map(|r| r.name.as_str()).collect();
        let rest = format!(
            "*{} more clusters* (they do not fit in {STATUS_POSTS} messages): {}. `/aurora status CLUSTER` shows any \
             of them in full.",
            left.len(),
            left.join(", ")
        );
        let blocks = [
            summary.clone(),
            packed_sections(brief[..shown].to_vec()),
            limits::sections(&rest),
        ]
        .concat();
        limits::pages(blocks)
    };
    let (mut fits, mut over) = (0, brief.len());
    while over - fits > 1 {
        let mid = (fits + over) / 2;
        if paged(mid).len() <= STATUS_POSTS {
            fits = mid;
        } else {
            over = mid;
        }
    }
    status_bodies(reports, paged(fits))
}

/// The status pages as messages, each with a short fallback text.
fn status_bodies(reports: &[ClusterReport], pages: Vec<Vec<Value>>) -> Vec<MessageBody> {
    let attention = reports.iter().filter(|r| !attention_reasons(r).is_empty()).count();
    let first = match reports {
        [one] => format!("Status of {}", one.name),
        _ => format!(
            "Status of {} global clusters: {attention} need attention",
            reports.len()
        ),
    };
    let n = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(i, mut blocks)| {
            let text = if n == 1 {
                first.clone()
            } else {
                // `limits::pages` left room for this marker.
                let part = format!("Part {} of {n} of the status answer", i + 1);
                blocks.insert(0, limits::context_block(&part));
                format!("{first} (part {} of {n})", i + 1)
            };
            limits::fit(MessageBody { text, blocks })
        })
        .collect()
}

/// The summary that opens a status answer for several clusters: how many, and which need attention
/// and why, in a few words each.
fn status_summary(reports: &[ClusterReport]) -> String {
    let needing: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            let why = attention_reasons(r);
            (!why.is_empty()).then(|| format!("• *{}*: {}", r.name, why.join(", ")))
        })
        .collect();
    if needing.is_empty() {
        return format!("*{} global clusters*: none needs attention.", reports.len());
    }
    // The summary stays one section: past that, the rest are counted (each is marked in its detail).
    let mut used = 0;
    let listed: Vec<&String> = needing
        .iter()
        .take_while(|l| {
            used += limits::len(l) + 1;
            used <= limits::SECTION_TEXT - 300
        })
        .collect();
    let more = match needing.len() - listed.len() {
        0 => String::new(),
        n => format!("\n• … and {n} more, each marked in its own lines"),
    };
    format!(
        "*{} global clusters*: {} need attention.\n{}{more}",
        reports.len(),
        needing.len(),
        listed.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n")
    )
}

/// Why a cluster needs a person's attention, in a few words each; empty when it does not.
fn attention_reasons(r: &ClusterReport) -> Vec<String> {
    let mut why = Vec::new();
    match &r.topology {
        Err(_) => why.push("cannot be read".to_owned()),
        Ok(t) => {
            if t.operation_in_progress.is_some() {
                why.push("managed operation in progress".to_owned());
            }
            if r.detached.is_none() && !r.members.iter().any(|m| m.member.is_writer) {
                why.push("no writer".to_owned());
            }
            if r.detached.is_some() && r.members.iter().any(|m| m.member.is_writer) {
                why.push("the old primary may still take writes".to_owned());
            }
        }
    }
    for m in &r.members {
        match &m.state {
            Err(_) => why.push(format!("`{}` cannot be read", esc(&m.member.cluster_id))),
            Ok(c) if c.status != "available" => why.push(format!("`{}` {}", esc(&m.member.cluster_id), esc(&c.status))),
            Ok(c) if m.member.is_writer && !c.has_writer => why.push("no writer instance".to_owned()),
            Ok(_) => {}
        }
        if let Some(sync) = m.member.sync.as_deref().filter(|s| *s != "connected") {
            why.push(format!("`{}` sync {}", esc(&m.member.cluster_id), esc(sync)));
        }
    }
    for (label, check) in [("writer", &r.writer_cname), ("reader", &r.reader_cname)] {
        match check {
            CnameCheck::Unreadable(_) => why.push(format!("{label} CNAME unreadable")),
            CnameCheck::Missing { .. } => why.push(format!("{label} CNAME missing")),
            CnameCheck::Points {
                value,
                expected: Some(exp),
                ..
            } if !crate::status::same_host(value, exp) => why.push(format!("{label} CNAME not at the writer")),
            CnameCheck::FollowsWriter { serves: None, .. } => {
                why.push(format!(
                    "{label} CNAME at the global writer endpoint, which has no writer"
                ));
            }
            CnameCheck::Points { .. } | CnameCheck::FollowsWriter { .. } => {}
        }
    }
    if let Some(c) = r.records.as_ref().filter(|c| c.outcome != Outcome::Pass) {
        why.push(format!("{} check", c.name));
    }
    why
}

/// One cluster's lines in a status answer too long for the full detail: its members (Region, role,
/// status, lag; no endpoints), the CNAMEs in one line when both point at the writer, and any warning.
fn cluster_brief(r: &ClusterReport) -> Vec<String> {
    let full = cluster_status(r);
    let Ok(_) = &r.topology else {
        return full;
    };
    let mut lines = cluster_header(r);
    lines.extend(operation_and_detached(r));
    for m in &r.members {
        let role = if m.member.is_writer { "*writer*" } else { "reader" };
        let state = match &m.state {
            Ok(c) => {
                format!(
                    "{}{}{}",
                    esc(&c.status),
                    if m.member.is_writer && !c.has_writer {
                        " (no writer instance!)"
                    } else {
                        ""
                    },
                    m.lag_ms.map(|l| format!(" · lag {}", lag_text(l))).unwrap_or_default()
                ) + &match c.write_forwarding.as_deref() {
                    Some(f) if !m.member.is_writer && f != "disabled" => format!(" · write forwarding {}", esc(f)),
                    _ => String::new(),
                }
            }
            Err(e) => format!(":warning: cannot read: {}", esc(e)),
        };
        lines.push(format!(
            "• {} `{}` {role} · {state}",
            m.member.region,
            esc(&m.member.cluster_id)
        ));
    }
    let at_writer = |c: &CnameCheck| matches!(c, CnameCheck::Points { value, expected: Some(exp), .. } if crate::status::same_host(value, exp));
    if at_writer(&r.writer_cname) && at_writer(&r.reader_cname) {
        lines.push(":white_check_mark: both CNAMEs point at the writer's endpoints".to_owned());
    } else {
        lines.extend([
            cname_line("writer", &r.writer_cname),
            cname_line("reader", &r.reader_cname),
        ]);
    }
    if let Some(c) = r.records.as_ref().filter(|c| c.outcome != Outcome::Pass) {
        lines.push(format!("{} *{}*: {}", check_icon(c.outcome), c.name, esc(&c.detail)));
    }
    lines
}

/// One cluster's lines in `/aurora status`: its members, its CNAMEs, its records check.
fn cluster_status(r: &ClusterReport) -> Vec<String> {
    let mut lines = cluster_header(r);
    match &r.topology {
        Err(e) => lines.push(format!(":warning: cannot read the global cluster: {}", esc(e))),
        Ok(_) => {
            lines.extend(operation_and_detached(r));
            for m in &r.members {
                let role = if m.member.is_writer { "*writer*" } else { "reader" };
                lines.push(format!(
                    "• {} `{}` {} · {}",
                    m.member.region,
                    esc(&m.member.cluster_id),
                    role,
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
        lines.push(format!("{} *{}*: {}", check_icon(c.outcome), c.name, esc(&c.detail)));
    }
    lines
}

/// A cluster's name and global cluster, and the recorded global cluster it follows, if it does.
fn cluster_header(r: &ClusterReport) -> Vec<String> {
    let mut lines = vec![format!("*{}* (`{}`)", r.name, esc(&r.global_cluster_id))];
    lines.extend(r.follows.iter().map(|f| follows_line(&r.name, f)));
    lines
}

/// A managed operation in progress on the global cluster, what a detach left, the open run, and what
/// to do next, if anything.
fn operation_and_detached(r: &ClusterReport) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(op) = r.topology.as_ref().ok().and_then(|t| t.operation_in_progress.as_ref()) {
        lines.push(format!(
            ":arrows_counterclockwise: managed operation in progress: `{}`",
            esc(op)
        ));
    }
    if let Some(d) = &r.detached {
        lines.extend(detached_lines(r, d));
    }
    if let Some(run) = &r.run {
        lines.push(run_line(run));
    }
    lines.extend(r.next.iter().map(|n| next_line(&r.name, n)));
    lines
}

/// The global cluster a cluster follows instead of the config's, and the config change that makes it
/// permanent.
fn follows_line(cluster: &str, f: &crate::store::GlobalClusterRecord) -> String {
    format!(
        ":information_source: *{}* follows global cluster {} (made by rebuild request #{}, {}) while the config names \
         {}: set {} in {}' {} entry to make it permanent (the record is then dropped at start-up)",
        esc(cluster),
        ident(&f.global_cluster_id),
        f.request,
        slack_time(f.recorded_at),
        ident(&f.replaces),
        ident(&format!("global_cluster_id = \"{}\"", f.global_cluster_id)),
        esc(cluster),
        ident("[[clusters]]")
    )
}

/// What to do next with a cluster: fail back with a switchover, now or once the old primary is back.
fn next_line(cluster: &str, next: &crate::status::Next) -> String {
    let b = match next {
        crate::status::Next::SwitchBack(b) => b,
        crate::status::Next::Rebuild { region } => {
            return format!(
                ":shield: Nothing replicates it since the detach. Once {region} is healthy, protect it again: {}",
                ident(&format!("/aurora rebuild {cluster} --in {region}"))
            );
        }
    };
    let old = &b.old_primary;
    let offer = format!(
        "Fail back to {} with a switchover (no data loss): {}",
        old.region,
        fail_back_command(cluster, old)
    );
    if b.ready() {
        return format!(":leftwards_arrow_with_hook: {offer}");
    }
    format!(
        ":hourglass_flowing_sand: {offer} once {} is back as an available, connected secondary (now: {})",
        ident(&old.cluster_id),
        old_primary_now(b)
    )
}

/// What the old primary is now: its status and its sync status.
fn old_primary_now(b: &crate::status::SwitchBack) -> String {
    let status = match &b.status {
        Ok(s) => esc(s),
        Err(e) => format!("cannot be read: {}", esc(e)),
    };
    match &b.old_primary.sync {
        Some(sync) => format!("{status}, sync {}", esc(sync)),
        None => format!("{status}, no sync status"),
    }
}

/// A cluster's open run: its step and the instance executing it.
fn run_line(run: &crate::status::RunReport) -> String {
    let state = match run.state {
        crate::store::RunState::NeedsAttention => "needs attention",
        _ => "running",
    };
    let who = match &run.executor {
        Some((name, token, false)) => format!("executed by *{}* (lease token {token})", esc(name)),
        Some((name, token, true)) => format!(
            "its lease (held by *{}*, token {token}) has run out: another instance takes it over at its next look",
            esc(name)
        ),
        None => "not taken up by an instance yet".to_owned(),
    };
    format!(
        ":gear: run {} (request #{}) {state} at step `{}`, {who}",
        run.run_id,
        run.request_id,
        esc(&run.step)
    )
}

/// The standalone writer a detach left, and a warning if the global cluster still has a writer.
fn detached_lines(r: &ClusterReport, d: &crate::status::Detached) -> Vec<String> {
    let mut lines = vec![format!(
        "• {} `{}` *standalone writer*, detached from the global cluster by request #{} · {}",
        d.report.member.region,
        esc(&d.report.member.cluster_id),
        d.request_id,
        member_detail(&d.report, true)
    )];
    if let Some(w) = r.members.iter().find(|m| m.member.is_writer) {
        lines.push(format!(
            ":warning: `{}` ({}) is still the writer of the global cluster and may still accept writes: fence it until the global database is rebuilt.",
            esc(&w.member.cluster_id),
            w.member.region
        ));
    }
    lines
}

/// The global writer endpoint and the cluster it serves now (the writer member, from the API).
fn global_endpoint_line(g: &crate::status::GlobalEndpoint) -> String {
    match &g.serves {
        Some(m) => format!(
            "• global writer endpoint `{}` → serves `{}` ({}), the writer",
            esc(&g.endpoint),
            esc(&m.cluster_id),
            m.region
        ),
        None => format!(
            ":warning: global writer endpoint `{}` serves no cluster: the global cluster has no writer",
            esc(&g.endpoint)
        ),
    }
}

/// Where a CNAME points, against the current writer's endpoint.
fn cname_line(label: &str, check: &CnameCheck) -> String {
    match check {
        CnameCheck::FollowsWriter { name, value, serves } => format!(
            ":white_check_mark: {label} CNAME `{}` → `{}`: follows the writer (the global writer endpoint, now `{}`)",
            esc(name),
            esc(value),
            esc(serves.as_deref().unwrap_or("no writer"))
        ),
        CnameCheck::Unreadable(e) => format!(":warning: {label} CNAME: cannot read: {}", esc(e)),
        CnameCheck::Missing { name } => format!(":x: {label} CNAME `{}` does not exist", esc(name)),
        CnameCheck::Points { name, value, expected } => match expected {
            Some(exp) if crate::status::same_host(value, exp) => format!(
                ":white_check_mark: {label} CNAME `{}` → `{}` (the current writer's {label} endpoint)",
                esc(name),
                esc(value)
            ),
            Some(exp) => format!(
                ":warning: {label} CNAME `{}` → `{}`, *not* the current writer's {label} endpoint `{}`",
                esc(name),
                esc(value),
                esc(exp)
            ),
            None => format!(
                ":grey_question: {label} CNAME `{}` → `{}` (the writer's endpoint is unknown)",
                esc(name),
                esc(value)
            ),
        },
    }
}

/// Packs texts (one per cluster) into as few section blocks as hold them whole, in order; a text
/// longer than a section is split over several.
fn packed_sections(mds: Vec<String>) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for md in mds {
        // Counted in bytes, never fewer than Slack's characters.
        if !current.is_empty() && current.len() + md.len() + 2 > limits::SECTION_TEXT {
            blocks.extend(limits::sections(&current));
            current.clear();
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(&md);
    }
    blocks.extend(limits::sections(&current));
    blocks
}

/// One row of `/aurora history`: a request and its run, or why its stored row cannot be read.
pub type HistoryEntry = Result<(Request, Option<crate::store::Run>), crate::store::DecodeError>;

/// The answer to `/aurora history`: newest first; a row that cannot be read is shown as such.
pub fn history(entries: &[HistoryEntry]) -> MessageBody {
    if entries.is_empty() {
        return MessageBody {
            text: "No failover has been requested yet.".to_owned(),
            blocks: vec![],
        };
    }
    let mut lines = vec!["*Recent failover requests* (newest first)".to_owned()];
    for entry in entries {
        lines.push(match entry {
            Ok((r, run)) => history_line(r, run.as_ref()),
            Err(e) => format!(
                "• :warning: stored {} row {} cannot be read: {}",
                e.table,
                esc(&e.key),
                esc(&e.reason)
            ),
        });
    }
    // The history is one text (an immediate answer): the newest requests that fit in it, and how many
    // older ones do not.
    let mut used = 0;
    let total = lines.len();
    let kept: Vec<String> = lines
        .into_iter()
        .map(|l| limits::truncate(&l, limits::SECTION_TEXT))
        .take_while(|l| {
            used += limits::len(l) + 1;
            used <= limits::SECTION_TEXT - 200
        })
        .collect();
    let mut text = kept.join("\n");
    if kept.len() < total {
        text.push_str(&format!(
            "\n… and {} older requests not shown here (`/aurora history CLUSTER` lists one cluster's).",
            total - kept.len()
        ));
    }
    MessageBody { text, blocks: vec![] }
}

/// One request of `/aurora history`: what was asked, by whom, and how it ended.
fn history_line(r: &Request, run: Option<&crate::store::Run>) -> String {
    let plan = r.stored_plan::<Plan>();
    let unreadable_plan = plan.is_err();
    let plan = plan.ok().flatten();
    let target = plan
        .as_ref()
        .map(|p| format!("{} → {}", p.from.region, p.to.region))
        .or_else(|| r.to_region.as_ref().map(|t| format!("→ {t}")))
        .unwrap_or_default();
    let mut outcome = request_outcome(r, run);
    if unreadable_plan {
        outcome.push_str(" · :warning: its stored plan cannot be read");
    }
    // The audit's record word `auto` (the requester left the mode to the bot) is not a mode people
    // can type: said in words here.
    let mode = match (r.mode, plan.as_ref().is_some_and(|p| p.mode_proposed)) {
        (None, _) => "mode not chosen yet".to_owned(),
        (Some(m), true) => format!("`{m}`, chosen by the bot"),
        (Some(m), false) => format!("`{m}`"),
    };
    let why = reason_and_ticket(r).map(|w| format!(" · {w}")).unwrap_or_default();
    format!(
        "• *#{}* {} {} ({mode}) · asked by {} {}{why} · {}",
        r.id,
        r.cluster,
        target,
        person(&r.requested_by),
        slack_time(r.requested_at),
        outcome
    )
}

/// Where a request stands in `/aurora history`.
fn request_outcome(r: &Request, run: Option<&crate::store::Run>) -> String {
    use crate::store::RequestState;
    let decided = |what: &str| match (&r.decided_by, r.decided_at) {
        (Some(by), Some(at)) => format!("{what} by {} {}", person(by), slack_time(at)),
        _ => what.to_owned(),
    };
    match (r.state, run) {
        (RequestState::Planning, _) => "being prepared".to_owned(),
        (RequestState::Pending, _) => format!("waiting for approval until {}", slack_time(r.expires_at)),
        (RequestState::Denied, _) => match r.note.as_deref() {
            Some(why) => format!("{}: {}", decided("denied"), reason(why)),
            None => decided("denied"),
        },
        (RequestState::Cancelled, _) => decided("cancelled"),
        (RequestState::Expired, _) => format!("expired {}", slack_time(r.expires_at)),
        (RequestState::Rejected, _) => format!("not posted: {}", esc(r.note.as_deref().unwrap_or("no plan"))),
        (RequestState::Approved, None) => decided("approved"),
        (RequestState::Approved, Some(run)) => format!("{} · {}", decided("approved"), run_outcome(run)),
    }
}

/// How a run ended (or where it is), in `/aurora history`.
fn run_outcome(run: &crate::store::Run) -> String {
    let took = run
        .finished_at
        .map(|f| duration(f.duration_since(run.started_at).unsigned_abs()))
        .unwrap_or_default();
    match run.state {
        RunState::Running => format!("running ({})", run.step),
        RunState::NeedsAttention => {
            format!(":rotating_light: needs attention, run {} ({})", run.id, run.step)
        }
        RunState::Succeeded => format!(":white_check_mark: succeeded in {took}"),
        RunState::Failed => format!(":x: failed after {took}"),
        RunState::Abandoned => format!(
            ":octagonal_sign: abandoned after {took}{}",
            run.control
                .abandoned_by
                .as_ref()
                .map(|u| format!(" by {}", person(u)))
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: &str) -> SlackUserId {
        SlackUserId::parse(id).unwrap()
    }

    fn approvers() -> Vec<Principal> {
        vec![Principal::parse("U02").unwrap(), Principal::parse("S01").unwrap()]
    }

    #[test]
    fn a_steps_reply_shows_what_it_waits_on_then_what_it_did_with_the_events_as_bullets() {
        let events = vec!["07:30:01 UTC RDS event (orders-west, us-west-2): promoted <now>".to_owned()];
        let waiting = note(&Note::StepWaiting {
            step: Step::WaitManaged,
            intro: "Following FailoverState.".into(),
            now: Some("orders-global: FailoverState pending".into()),
            events: events.clone(),
        });
        assert_eq!(
            waiting.text,
            ":hourglass_flowing_sand: *Wait until the target is the writer*: Following FailoverState.\nNow: \
             orders-global: FailoverState pending\n• 07:30:01 UTC RDS event (orders-west, us-west-2): promoted &lt;now&gt;"
        );
        let done = note(&Note::StepFinished {
            step: Step::WaitManaged,
            detail: "orders-west is the writer.".into(),
            took: std::time::Duration::from_secs(5),
            events,
        });
        assert!(
            done.text.starts_with(
                ":heavy_check_mark: *Wait until the target is the writer* (5s): orders-west is the writer.\n• 07:30:01"
            ),
            "{}",
            done.text
        );
    }

    fn open_request(id: i64) -> Request {
        let at = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        Request {
            id: id.into(),
            cluster: crate::types::ClusterName::parse("orders").unwrap(),
            mode: Some(Mode::Detach),
            requested_by: Person::Slack(u("U0ALICE")),
            requested_at: at,
            to_region: Region::parse("us-west-2"),
            origin_channel: "C0INCIDENT".into(),
            response_url: None,
            expires_at: at + jiff::SignedDuration::from_secs(900),
            state: crate::store::RequestState::Pending,
            plan: None,
            decided_by: None,
            decided_at: None,
            note: None,
            message: None,
            reason: None,
            ticket: None,
            approvals: Vec::new(),
        }
    }

    #[test]
    fn the_deny_reason_modal_names_the_request_in_its_metadata_and_keeps_slacks_limits() {
        for (id, role, title) in [
            (7, Role::Approver, "Deny request #7"),
            (1_234_567_890_123, Role::Requester, "Withdraw request"),
        ] {
            let view = deny_reason_modal(&open_request(id), role);
            assert_eq!(view["callback_id"], DENY_REASON_VIEW);
            assert_eq!(view["private_metadata"], id.to_string());
            assert_eq!(view["title"]["text"], title);
            for label in ["/title/text", "/submit/text", "/close/text"] {
                let text = view.pointer(label).and_then(Value::as_str).unwrap();
                assert!(text.chars().count() <= 24, "{label}: {text}");
            }
            let input = &view["blocks"][1];
            assert_eq!(
                (input["type"].as_str(), input["block_id"].as_str()),
                (Some("input"), Some(REASON_BLOCK))
            );
            assert_eq!(input["element"]["action_id"], REASON_ACTION);
            assert_eq!(input.get("optional"), None, "the reason is required");
        }
        let refused = modal_refusal(&Refusal::Expired(7.into()));
        assert_eq!(refused["response_action"], "errors");
        assert_eq!(
            refused["errors"][REASON_BLOCK],
            "Request #7 has expired; nothing was changed."
        );
    }

    #[test]
    fn the_pending_list_shows_each_request_with_the_buttons_its_reader_may_use() {
        let now = jiff::Timestamp::from_second(1_800_000_300).unwrap();
        let link = |id: i64| RequestLink {
            id: id.into(),
            channel: ChannelId::parse("C0INCIDENT").unwrap(),
            posted: Some(("acme".into(), "1800000000.000100".into())),
        };
        let list = PendingList {
            items: vec![
                Actionable {
                    request: open_request(3),
                    role: Role::Approver,
                    need: 1,
                    link: link(3),
                },
                Actionable {
                    request: open_request(4),
                    role: Role::Requester,
                    need: 1,
                    link: link(4),
                },
            ],
            requesters: approvers(),
            now,
        };
        let body = pending(&list);
        assert_eq!(body.text, "2 open requests you may act on");
        assert_eq!(
            body.blocks[1]["text"]["text"],
            "*<https://acme.slack.com/archives/C0INCIDENT/p1800000000000100|request #3>*: *orders* to us-west-2 \
             (`detach`) · asked by <@U0ALICE> 5m 00s ago · expires in 10m 00s"
        );
        let ids = |b: &Value| -> Vec<(String, String)> {
            b["elements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["action_id"].as_str().unwrap().to_owned(),
                        e["value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        assert_eq!(
            ids(&body.blocks[2]),
            [(PENDING_APPROVE.into(), "3".into()), (PENDING_DENY.into(), "3".into())]
        );
        assert_eq!(ids(&body.blocks[4]), [(PENDING_DENY.into(), "4".into())]);
        let empty = pending(&PendingList {
            items: vec![],
            requesters: approvers(),
            now,
        });
        assert!(empty.text.starts_with("Nothing you may act on"), "{}", empty.text);
        assert!(empty.text.contains("<@U02>, <!subteam^S01>"), "{}", empty.text);
    }

    #[test]
    fn under_a_policy_of_several_approvers_the_pending_list_shows_progress_and_no_second_approve() {
        let now = jiff::Timestamp::from_second(1_800_000_300).unwrap();
        let mut counted = open_request(5);
        counted.approvals.push(crate::store::Approval {
            by: Person::Slack(u("U0BOB")),
            at: now,
        });
        let item = |request: &Request, role| Actionable {
            request: request.clone(),
            role,
            need: 2,
            link: RequestLink {
                id: request.id,
                channel: ChannelId::parse("C0INCIDENT").unwrap(),
                posted: None,
            },
        };
        let list = PendingList {
            items: vec![item(&counted, Role::Counted), item(&open_request(6), Role::Approver)],
            requesters: approvers(),
            now,
        };
        let body = pending(&list);
        let line = body.blocks[1]["text"]["text"].as_str().unwrap();
        assert!(
            line.contains("· 1 of 2 approvals: <@U0BOB> ·")
                && line.ends_with("(your approval is counted: you may still deny it)"),
            "{line}"
        );
        let labels = |b: &Value| -> Vec<String> {
            b["elements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["text"]["text"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(labels(&body.blocks[2]), ["Deny"], "no second Approve");
        assert_eq!(labels(&body.blocks[4]), ["Approve", "Deny"]);
        assert!(
            body.blocks[3]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("· 0 of 2 approvals ·")
        );
        let confirm = body.blocks[4]["elements"][0]["confirm"]["text"]["text"]
            .as_str()
            .unwrap();
        assert!(
            confirm.ends_with("Your approval is counted; the run starts after 1 more."),
            "{confirm}"
        );
    }

    #[test]
    fn answers_to_a_failover_request_say_where_it_is_and_why_not() {
        use crate::types::{ChannelId, ClusterName, Region};
        let orders = ClusterName::parse("orders").unwrap();
        let posted = Answer::Posted {
            id: 4.into(),
            cluster: orders.clone(),
            to: Region::parse("us-west-2").unwrap(),
            mode: Mode::Failover,
            channel: ChannelId::parse("C0INCIDENT").unwrap(),
            approvers: approvers(),
            expires_in: std::time::Duration::from_secs(900),
        };
        assert_eq!(
            answer(&posted),
            "Request #4 to move *orders* to us-west-2 (failover) is posted in <#C0INCIDENT> for approval by \
             <@U02>, <!subteam^S01>. It expires in 15m 00s."
        );
        let rebuild = Answer::Posted {
            id: 4.into(),
            cluster: orders.clone(),
            to: Region::parse("us-east-1").unwrap(),
            mode: Mode::Rebuild,
            channel: ChannelId::parse("C0INCIDENT").unwrap(),
            approvers: approvers(),
            expires_in: std::time::Duration::from_secs(900),
        };
        assert!(
            answer(&rebuild).starts_with(
                "Request #4 to rebuild *orders*'s global database with a secondary in us-east-1 is posted in"
            ),
            "a rebuild moves nothing: {}",
            answer(&rebuild)
        );
        let no_plan = Answer::NoPlan {
            cluster: orders,
            reason: Unplanned::Other("AWS said <no> & more. ".into()),
        };
        assert_eq!(
            answer(&no_plan),
            "Dry run for orders: no plan. AWS said &lt;no&gt; &amp; more. Nothing was changed."
        );
    }

    #[test]
    fn a_busy_cluster_links_to_its_request_or_names_its_channel() {
        use crate::types::ChannelId;
        let mut link = RequestLink {
            id: 3.into(),
            channel: ChannelId::parse("C0INCIDENT").unwrap(),
            posted: Some(("acme".into(), "1700000000.123456".into())),
        };
        assert_eq!(
            request_link(&link),
            "<https://acme.slack.com/archives/C0INCIDENT/p1700000000123456|request #3>"
        );
        link.posted = None;
        assert_eq!(request_link(&link), "request #3 in <#C0INCIDENT>");
    }

    #[test]
    fn refusals_name_the_people_and_the_state() {
        let decided = Refusal::AlreadyDecided {
            id: 3.into(),
            state: crate::store::RequestState::Approved,
            by: Some(u("U02").into()),
        };
        assert_eq!(refusal(&decided), "Request #3 was already approved by <@U02>.");
        assert_eq!(
            refusal(&Refusal::NotApprover(approvers())),
            "You are not an approver of failover requests. Approvers: <@U02>, <!subteam^S01>."
        );
        assert_eq!(
            refusal(&Refusal::NoReason(5.into())),
            "Say why you abandon run 5: `/aurora abandon 5 REASON`."
        );
        let ended = Refusal::RunEnded {
            id: 5.into(),
            state: RunState::Succeeded,
        };
        assert_eq!(
            refusal(&ended),
            "Run 5 has already ended (finished: it succeeded); nothing was changed."
        );
        assert_eq!(
            decided.to_string(),
            "request #3 already approved",
            "plain, for the audit"
        );
    }

    #[test]
    fn a_resume_ask_says_what_resuming_does_and_why_the_run_stopped() {
        let ask = Note::ResumeAsked {
            run_id: 5.into(),
            token: 42,
            by: u("U03"),
            target: Some(ResumeTarget {
                cluster_id: "orders-west".into(),
                region: crate::types::Region::parse("us-west-2").unwrap(),
                writer_record: "db.example.".into(),
                reader_record: "ro.example.".into(),
            }),
            stopped: Some((Step::WaitWritable, "not <writable>".into())),
        };
        let body = note(&ask);
        assert_eq!(
            body.text,
            ":raised_hand: <@U03> asks to resume run 5. The bot goes on from where it stopped: it checks that \
             orders-west (us-west-2) is writable, then moves db.example. and ro.example. to it, even where its own \
             re-check would not. It stopped at Wait until the target is writable: not &lt;writable&gt;.\nA second \
             person (an approver, not <@U03>) must approve."
        );
        assert_eq!(body.blocks[1]["elements"][0]["value"], "5:42");
    }

    #[test]
    fn mrkdwn_specials_are_escaped() {
        assert_eq!(esc("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    #[test]
    fn the_abandon_button_value_stays_within_slacks_limit() {
        for reason in ["short".to_owned(), "\u{1}".repeat(1_500), "é\"".repeat(3_000)] {
            let target = AbandonTarget {
                run: 7.into(),
                cluster: crate::types::ClusterName::parse("orders").unwrap(),
                request: 3.into(),
                state: RunState::NeedsAttention,
            };
            let answer = abandon_confirmation(7.into(), &target, &reason);
            let value = answer["blocks"][1]["elements"][0]["value"].as_str().unwrap();
            assert!(value.chars().count() <= 2_000, "{} characters", value.chars().count());
            let parsed: AbandonValue = serde_json::from_str(value).unwrap();
            assert_eq!(parsed.run, 7);
            assert!(reason.starts_with(&parsed.reason));
        }
    }

    #[test]
    fn typed_text_cannot_break_out_of_its_code_span() {
        assert_eq!(code("ord`ers <!channel> & co"), "`ordˋers &lt;!channel&gt; &amp; co`");
        assert_eq!(code("a\nb"), "`a b`");
        assert_eq!(code(&"x".repeat(100)), format!("`{}…`", "x".repeat(80)));
    }

    #[test]
    fn text_that_is_no_command_is_answered_with_what_is_wrong_and_the_usage() {
        let e = usage_error(&UsageError::MissingRun("abandon"));
        assert!(
            e.starts_with(
                "`abandon` needs a run number, as the run's thread gives it, such as `abandon 3 REASON`.\n\n*Usage*\n"
            ),
            "{e}"
        );
        assert!(
            usage_error(&UsageError::MissingRun("resume"))
                .starts_with("`resume` needs a run number, as the run's thread gives it, such as `resume 3`.")
        );
        // What the person typed cannot break out of its code span.
        let e = usage_error(&UsageError::UnknownCommand("`<!here>`".into()));
        assert!(e.starts_with("unknown command `ˋ&lt;!here&gt;ˋ`.\n\n"), "{e}");
        assert!(usage().ends_with("• `/aurora help`: this message."));
    }

    #[test]
    fn a_cluster_or_region_the_settings_lack_is_answered_with_those_they_have() {
        let cluster = NotConfigured::Cluster {
            typed: "billing".into(),
            configured: vec!["orders".into()],
        };
        assert_eq!(
            not_configured(&cluster),
            "Unknown cluster `billing`. Configured clusters: orders."
        );
        let region = NotConfigured::Region {
            typed: "eu-west-1".into(),
            cluster: "orders".into(),
            regions: vec!["us-east-1".into(), "us-west-2".into()],
        };
        assert_eq!(
            not_configured(&region),
            "`eu-west-1` is not a Region of orders. Its Regions: us-east-1, us-west-2."
        );
        // The audit's form is plain.
        assert_eq!(region.to_string(), "eu-west-1 is not a Region of orders");
    }

    fn refused_plan(asked: Option<Mode>, alternatives: Vec<Alternative>) -> PlanError {
        PlanError::Refused {
            asked,
            cluster: ClusterName::parse("orders").unwrap(),
            to: Region::parse("us-west-2").unwrap(),
            failed: "Primary: us-east-1 cannot be reached".into(),
            alternatives,
        }
    }

    #[test]
    fn a_refused_plan_says_what_failed_and_how_to_ask_for_each_mode_still_possible() {
        let lag_ms = Some(800.0);
        let e = plan_error(&refused_plan(
            None,
            vec![
                Alternative {
                    mode: Mode::Failover,
                    lag_ms,
                },
                Alternative {
                    mode: Mode::Detach,
                    lag_ms,
                },
            ],
        ));
        assert!(
            e.starts_with(
                "a switchover (the only mode that loses no data) to us-west-2 is not possible: Primary: us-east-1 \
                 cannot be reached\nPossible instead:\n• `--mode failover`: loses the writes not yet replicated"
            ),
            "{e}"
        );
        assert!(
            e.contains("`/aurora failover orders --to us-west-2 --mode failover`"),
            "{e}"
        );
        assert!(
            e.contains("`/aurora failover orders --to us-west-2 --mode detach`"),
            "{e}"
        );
        assert!(e.contains("lag now 800 ms"), "{e}");
        // Its Display is plain words, for logs, the audit and the stored reason: no markup.
        let none_left = refused_plan(None, vec![]);
        assert_eq!(
            plan_error(&none_left),
            "a switchover (the only mode that loses no data) to us-west-2 is not possible: Primary: us-east-1 \
             cannot be reached\nNo other mode is possible right now."
        );
        assert_eq!(
            none_left.to_string(),
            "a switchover to us-west-2 is not possible: Primary: us-east-1 cannot be reached"
        );
        let unknown = Alternative {
            mode: Mode::Switchover,
            lag_ms: None,
        };
        let e = plan_error(&refused_plan(Some(Mode::Failover), vec![unknown]));
        assert!(e.starts_with("a failover to us-west-2 is not possible: "), "{e}");
        assert!(
            e.ends_with(
                "\n• `--mode switchover`: no data loss; waits for the target to catch up (writes pause meanwhile); \
                 keeps the global topology (lag unknown). Type `/aurora failover orders --to us-west-2 --mode switchover`"
            ),
            "{e}"
        );
        assert!(
            plan_error(&refused_plan(Some(Mode::Detach), vec![])).ends_with("\nNo other mode is possible right now.")
        );
    }

    #[test]
    fn a_run_that_needs_attention_says_whether_aws_still_runs_its_operation() {
        let orders = ClusterName::parse("orders").unwrap();
        let mut a = Attention {
            run_id: 7.into(),
            step: Step::FIRST,
            reason: "timed out".into(),
            cluster_now: "west: available".into(),
            dns_now: "unchanged".into(),
            dns_touched: false,
            guidance: vec!["w.zone and r.zone still point where they did before the run (at east, us-east-1).".into()],
            operation: Some(OperationSeen::Running {
                mode: Mode::Switchover,
                state: "switching-over".into(),
                cluster: orders.clone(),
            }),
            window_until: None,
            watch_every: std::time::Duration::from_secs(60),
        };
        let text = needs_attention(&a);
        assert!(
            text.contains(
                "\n• w.zone and r.zone still point where they did before the run (at east, us-east-1).\n• AWS is still \
                 running the switchover (switching-over): `/aurora status orders` follows it.\nThe bot keeps watching"
            ),
            "{text}"
        );
        a.operation = Some(OperationSeen::Unread {
            mode: Mode::Failover,
            cluster: orders,
        });
        assert!(needs_attention(&a).contains(
            "\n• Whether AWS is still running the failover could not be read: `/aurora status orders` shows it.\n"
        ));
        a.operation = Some(OperationSeen::Idle { writer: "west".into() });
        assert!(needs_attention(&a).contains("\n• No operation is in progress; the writer is west.\n"));
    }

    #[test]
    fn an_attention_note_stored_before_the_operation_field_still_reads() {
        let old = r#"{"run_id":7,"step":"detach","reason":"r","cluster_now":"c","dns_now":"d","dns_touched":false,
            "guidance":["AWS is still running the failover (failing-over): `/aurora status orders` follows it."],
            "window_until":null,"watch_every":{"secs":60,"nanos":0}}"#;
        let a: Attention = serde_json::from_str(old).unwrap();
        assert_eq!(a.operation, None);
        assert!(
            needs_attention(&a)
                .contains("\n• AWS is still running the failover (failing-over): `/aurora status orders`")
        );
    }

    fn unreadable(name: &str) -> ClusterReport {
        ClusterReport {
            name: name.to_owned(),
            global_cluster_id: format!("{name}-global"),
            topology: Err("Throttling: Rate exceeded".into()),
            members: vec![],
            detached: None,
            run: None,
            global_endpoint: None,
            writer_cname: CnameCheck::Unreadable("Throttling".into()),
            reader_cname: CnameCheck::Unreadable("Throttling".into()),
            records: None,
            follows: None,
            next: None,
        }
    }

    fn switch_back(status: Result<&str, &str>, sync: Option<&str>) -> crate::status::Next {
        crate::status::Next::SwitchBack(crate::status::SwitchBack {
            request_id: crate::store::RequestId::new(7),
            after: Mode::Failover,
            old_primary: crate::ports::Member {
                region: crate::types::Region::parse("us-east-1").unwrap(),
                cluster_id: "orders-east".into(),
                arn: "arn:aws:rds:us-east-1:123456789012:cluster:orders-east".into(),
                is_writer: false,
                sync: sync.map(str::to_owned),
            },
            status: status.map(str::to_owned).map_err(str::to_owned),
        })
    }

    #[test]
    fn status_says_which_recorded_global_cluster_it_follows_and_the_config_change_that_makes_it_permanent() {
        let mut r = unreadable("orders");
        r.global_cluster_id = "orders-global-2".into();
        r.follows = Some(crate::store::GlobalClusterRecord {
            cluster: crate::types::ClusterName::parse("orders").unwrap(),
            global_cluster_id: "orders-global-2".into(),
            request: crate::store::RequestId::new(12),
            recorded_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            replaces: "orders-global".into(),
        });
        let text = cluster_status(&r).join("\n");
        assert!(text.starts_with("*orders* (`orders-global-2`)\n"), "{text}");
        assert!(
            text.contains(
                ":information_source: *orders* follows global cluster `orders-global-2` (made by rebuild request #12, \
                 <!date^1800000000^{date_short_pretty} {time}|2027-01-15 08:00 UTC>) while the config names \
                 `orders-global`: set `global_cluster_id = \"orders-global-2\"` in orders' `[[clusters]]` entry to \
                 make it permanent (the record is then dropped at start-up)"
            ),
            "{text}"
        );
        assert!(
            cluster_brief(&r)
                .join("\n")
                .contains("follows global cluster `orders-global-2`")
        );
    }

    #[test]
    fn fail_back_is_offered_as_a_switchover_now_or_once_the_old_primary_is_a_connected_secondary() {
        assert_eq!(
            next_line("orders", &switch_back(Ok("available"), Some("connected"))),
            ":leftwards_arrow_with_hook: Fail back to us-east-1 with a switchover (no data loss): \
             `/aurora failover orders --to us-east-1 --mode switchover`"
        );
        assert_eq!(
            next_line("orders", &switch_back(Ok("available"), Some("pending-resync"))),
            ":hourglass_flowing_sand: Fail back to us-east-1 with a switchover (no data loss): \
             `/aurora failover orders --to us-east-1 --mode switchover` once `orders-east` is back as an available, \
             connected secondary (now: available, sync pending-resync)"
        );
        assert!(
            next_line("orders", &switch_back(Err("<timeout>"), None))
                .ends_with("(now: cannot be read: &lt;timeout&gt;, no sync status)")
        );
    }

    #[test]
    fn a_status_too_long_for_four_posts_names_the_clusters_left_out() {
        let reports: Vec<ClusterReport> = (0..400).map(|i| unreadable(&format!("cluster-{i:03}"))).collect();
        let bodies = status(&reports);
        assert_eq!(bodies.len(), STATUS_POSTS);
        for b in &bodies {
            assert!(b.blocks.len() <= limits::MAX_BLOCKS);
            assert!(b.blocks.iter().map(limits::block_text_len).sum::<usize>() <= limits::BLOCKS_TEXT);
            assert!(limits::len(&b.text) <= limits::SUMMARY);
        }
        let texts: Vec<&str> = bodies
            .iter()
            .flat_map(|b| &b.blocks)
            .filter_map(|b| b["text"]["text"].as_str())
            .collect();
        assert_eq!(
            bodies[1].blocks[0]["elements"][0]["text"],
            "Part 2 of 4 of the status answer"
        );
        assert!(texts[0].starts_with("*400 global clusters*: 400 need attention.\n• *cluster-000*: cannot be read"));
        let all = texts.join("\n");
        assert!(
            all.contains("`/aurora status CLUSTER` shows any of them in full."),
            "{all}"
        );
        // Every cluster is there: in detail, or by name at the end.
        for r in &reports {
            assert!(all.contains(&r.name), "{} missing", r.name);
        }
        assert_eq!(
            bodies[1].text,
            "Status of 400 global clusters: 400 need attention (part 2 of 4)"
        );
    }

    #[test]
    fn one_cluster_is_shown_in_full_without_a_summary() {
        let bodies = status(&[unreadable("orders")]);
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0].text, "Status of orders");
        let text = bodies[0].blocks[0]["text"]["text"].as_str().unwrap();
        assert!(
            text.starts_with("*orders* (`orders-global`)\n:warning: cannot read the global cluster"),
            "{text}"
        );
    }

    #[test]
    fn a_switchover_completes_as_a_switchover_and_a_failover_as_a_failover() {
        let old = crate::ports::Member {
            region: Region::parse("us-east-1").unwrap(),
            cluster_id: "orders-east".into(),
            arn: "arn:east".into(),
            is_writer: false,
            sync: None,
        };
        let mut c = Completion {
            writer_record: "w.zone.".into(),
            reader_record: "r.zone.".into(),
            writer_endpoint: "w.west".into(),
            reader_endpoint: "r.west".into(),
            writer_follows: None,
            phases: vec![],
            total: std::time::Duration::from_secs(42),
            old_primary: old,
            after: Some(Aftermath::SwitchedOver {
                cluster: "orders".into(),
            }),
            writes_through_cname: None,
        };
        assert!(
            completed(&c).starts_with(":tada: *Switchover complete* in 42s."),
            "{}",
            completed(&c)
        );
        c.after = Some(Aftermath::Detached {
            cluster: "orders".into(),
            promoted: "orders-west".into(),
        });
        assert!(completed(&c).starts_with(":tada: *Failover complete* in 42s."));
    }

    #[test]
    fn the_immediate_answers_to_commands_keep_their_words() {
        assert_eq!(
            request_recorded(12.into(), &ChannelId::parse("C0INCIDENT").unwrap()),
            "Request #12 is recorded. Reading the topology now; the approval request will be posted in <#C0INCIDENT> \
             in a moment."
        );
        assert!(foreign_command(&Foreign::WorkspaceUnknown).contains("its /readyz says which); nothing was done."));
        assert_eq!(
            foreign_command(&Foreign::OrgInstall),
            "This bot does not serve this workspace or app; nothing was done."
        );
    }
}
