//! What the page shows, built from the records: the channel from the Slack stand-in's calls (posts,
//! edits, thread replies, ephemeral answers, modals), the emulated AWS from the emulator's snapshot,
//! and the run and its timeline from the scenario's store (the audit trail, as
//! `aurora-failover-bot audit` reads it).

use super::controls::{REGIONS, THROTTLE_ACTIONS};
use super::sandbox::{Generation, Origins, USERS};
use super::scenarios::ScenarioId;
use super::{CHANNEL, RECORD_READER, RECORD_WRITER, ZONE};
use crate::store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use standin::Recorded;
use std::collections::HashMap;

/// What the sandbox itself put in the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalKind {
    /// A user's own slash command, echoed to them.
    Command,
    /// The bot's immediate answer to a request (the HTTP response), to the user who sent it.
    Answer,
    /// The bot could not be reached, or refused the request at the HTTP level.
    Error,
    /// A control used or a scenario event, for everyone.
    Notice,
}

/// A line the sandbox put in the channel, placed after the stand-in's call `after_seq`.
#[derive(Debug, Clone)]
pub struct Local {
    pub after_seq: u64,
    pub n: u64,
    /// Only this user sees it (`None`: everyone).
    pub to: Option<&'static str>,
    pub kind: LocalKind,
    pub text: String,
    pub blocks: Value,
    pub at: jiff::Timestamp,
}

/// The inputs of one state.
pub struct Parts<'a> {
    pub generation: Option<&'a Generation>,
    pub calls: &'a [Recorded],
    pub local: &'a [Local],
    pub origins: &'a Origins,
    pub modal_closed: &'a HashMap<&'static str, u64>,
    pub modal_errors: &'a HashMap<&'static str, Value>,
    pub aws: awsim::Snapshot,
    /// The emulator's call log since the scenario started.
    pub aws_calls: Vec<awsim::CallRecord>,
}

/// The whole state the page renders: `{generation, scenario, scenarios, users, channel, audit_config,
/// messages, modals, aws, run, timeline, controls}`.
pub async fn state(parts: Parts<'_>) -> Value {
    let since = parts.generation.map_or(0, |g| g.since_seq);
    let calls: Vec<&Recorded> = parts.calls.iter().filter(|c| c.seq > since).collect();
    let modals: serde_json::Map<String, Value> = USERS
        .iter()
        .filter_map(|u| {
            let closed = parts.modal_closed.get(u.id).copied().unwrap_or(0).max(since);
            let view = open_modal(parts.calls, parts.origins, u.id, closed)?;
            let errors = parts.modal_errors.get(u.id).cloned().unwrap_or(Value::Null);
            Some((u.id.to_owned(), json!({"view": view, "errors": errors})))
        })
        .collect();
    let (run, timeline) = match parts.generation {
        Some(g) => (run(&*g.store).await, timeline(&*g.store).await),
        None => (Value::Null, Value::Null),
    };
    json!({
        "generation": parts.generation.map(|g| g.number),
        "scenario": parts.generation.map(|g| g.scenario.about()),
        "scenarios": ScenarioId::ALL.map(ScenarioId::about),
        "users": USERS,
        "channel": {"id": CHANNEL, "name": "incidents"},
        "audit_config": parts.generation.map(|g| g.config_path.display().to_string()),
        "messages": messages(&calls, parts.local, parts.origins),
        "modals": modals,
        "aws": aws(&parts.aws, &parts.aws_calls),
        "run": run,
        "timeline": timeline,
        "controls": {"regions": REGIONS, "throttle_actions": THROTTLE_ACTIONS},
    })
}

/// A field of a Web API body that may be JSON or a JSON string (`blocks`, `view`), as Slack accepts both.
fn json_field(body: &Value, name: &str) -> Value {
    match body.get(name) {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

fn time_of(ts: &str) -> String {
    ts.split('.')
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A message the bot posted, as the page shows it.
fn posted(c: &Recorded, kind: &str, to: Option<&str>) -> Value {
    let ts = c.ts.clone().unwrap_or_default();
    json!({
        "ts": ts,
        "time": time_of(&ts),
        "author": "aurora-failover-bot",
        "kind": kind,
        "to": to,
        "text": c.text(),
        "blocks": json_field(&c.body, "blocks"),
        "edited": false,
        "replies": [],
    })
}

/// Where a message is: top-level item `i`, or reply `j` of item `i`.
#[derive(Clone, Copy)]
enum At {
    Top(usize),
    Reply(usize, usize),
}

/// The channel as it is built from the records: items sorted by where they happened (the stand-in's
/// call `seq`, then the sandbox's own lines after the call they followed), and where each posted
/// message is (`ts` → top-level item and/or reply), for edits and replies.
#[derive(Default)]
struct Channel {
    items: Vec<((u64, u8, u64), Value)>,
    index: HashMap<String, Vec<At>>,
}

impl Channel {
    /// A `chat.postMessage` Slack took: a top-level message, a reply in its parent's thread (and in the
    /// channel too when broadcast), or a direct message (`D{user}`, as conversations.open answers).
    fn post(&mut self, c: &Recorded) {
        let key = (c.seq, 0, 0);
        let ts = c.ts.clone().unwrap_or_default();
        let channel = c.field("channel").unwrap_or_default();
        if channel != CHANNEL {
            let to = channel.strip_prefix('D').unwrap_or(channel);
            self.items.push((key, posted(c, "dm", Some(to))));
            return;
        }
        let parent = c
            .thread_ts()
            .and_then(|t| self.index.get(t))
            .and_then(|at| at.first().copied());
        let Some(At::Top(i) | At::Reply(i, _)) = parent else {
            self.items.push((key, posted(c, "message", None)));
            self.index.insert(ts, vec![At::Top(self.items.len() - 1)]);
            return;
        };
        let replies = self.items[i].1["replies"].as_array_mut().expect("replies is an array");
        replies.push(posted(c, "reply", None));
        let mut at = vec![At::Reply(i, replies.len() - 1)];
        if c.body.get("reply_broadcast").and_then(Value::as_bool) == Some(true) {
            let mut copy = posted(c, "broadcast", None);
            copy["thread_ts"] = json!(c.thread_ts());
            self.items.push((key, copy));
            at.push(At::Top(self.items.len() - 1));
        }
        self.index.insert(ts, at);
    }

    /// A `chat.update` Slack took: the message (wherever it shows) gets the new text and blocks.
    fn update(&mut self, c: &Recorded) {
        let Some(at) = c.ts.as_deref().and_then(|ts| self.index.get(ts)) else {
            return;
        };
        for &a in at {
            let m = match a {
                At::Top(i) => &mut self.items[i].1,
                At::Reply(i, j) => &mut self.items[i].1["replies"][j],
            };
            m["text"] = json!(c.text());
            m["blocks"] = json_field(&c.body, "blocks");
            m["edited"] = json!(true);
        }
    }

    /// A `chat.postEphemeral`, or a response_url post (ephemeral to who sent the command or click,
    /// unless `in_channel`).
    fn ephemeral(&mut self, c: &Recorded, origins: &Origins) {
        let (kind, to) = if c.method == "response" {
            let to = c.response_id.and_then(|id| origins.responses.get(&id).copied());
            let in_channel = c.field("response_type") == Some("in_channel");
            ("response", if in_channel { None } else { to.map(str::to_owned) })
        } else {
            ("ephemeral", c.field("user").map(str::to_owned))
        };
        self.items.push(((c.seq, 0, 0), posted(c, kind, to.as_deref())));
    }

    /// A line of the sandbox's own.
    fn local(&mut self, l: &Local) {
        let author = match l.kind {
            LocalKind::Command => USERS.iter().find(|u| Some(u.id) == l.to).map_or("you", |u| u.name),
            LocalKind::Notice => "sandbox",
            LocalKind::Answer | LocalKind::Error => "aurora-failover-bot",
        };
        let item = json!({
            "ts": Value::Null,
            "time": l.at.strftime("%H:%M:%S").to_string(),
            "author": author,
            "kind": l.kind,
            "to": l.to,
            "text": l.text,
            "blocks": l.blocks,
            "edited": false,
            "replies": [],
        });
        self.items.push(((l.after_seq, 1, l.n), item));
    }
}

/// The channel, oldest first: the bot's posts with their thread replies nested and edits applied,
/// ephemeral answers (`to`: the one user who sees them), and the sandbox's own lines. Calls Slack
/// refused or failed are not shown, as Slack shows nothing for them.
fn messages(calls: &[&Recorded], local: &[Local], origins: &Origins) -> Vec<Value> {
    let mut channel = Channel::default();
    for c in calls.iter().filter(|c| c.status == 200) {
        match c.method.as_str() {
            "chat.postMessage" if c.ts.is_some() => channel.post(c),
            "chat.update" => channel.update(c),
            "chat.postEphemeral" | "response" => channel.ephemeral(c, origins),
            _ => {}
        }
    }
    for l in local {
        channel.local(l);
    }
    channel.items.sort_by_key(|(k, _)| *k);
    channel.items.into_iter().map(|(_, v)| v).collect()
}

/// The view the bot opened last for `user` after the stand-in's call `closed_after` (when their modal
/// last closed), if any: a `views.open` Slack accepted, from a trigger of theirs.
pub fn open_modal(calls: &[Recorded], origins: &Origins, user: &str, closed_after: u64) -> Option<Value> {
    let c = calls
        .iter()
        .rev()
        .take_while(|c| c.seq > closed_after)
        .find(|c| c.method == "views.open" && c.status == 200)?;
    let trigger = c.field("trigger_id")?;
    let owner = origins.triggers.get(trigger).copied().or(origins.last_actor)?;
    if owner != user || !standin::issued_trigger(trigger) {
        return None;
    }
    let view = json_field(&c.body, "view");
    view.is_object().then_some(view)
}

/// Slack's `view.state.values` for `view`'s input blocks: block id → action id → `{type, value}`,
/// each value from `values` (by block id), `null` when not given.
pub fn input_values(view: &Value, values: &HashMap<String, String>) -> Value {
    let mut out = serde_json::Map::new();
    for block in view["blocks"].as_array().into_iter().flatten() {
        if block["type"] != "input" {
            continue;
        }
        let (Some(block_id), Some(action_id)) = (block["block_id"].as_str(), block["element"]["action_id"].as_str())
        else {
            continue;
        };
        let value = values.get(block_id).filter(|v| !v.trim().is_empty());
        out.insert(
            block_id.to_owned(),
            json!({action_id: {"type": block["element"]["type"], "value": value}}),
        );
    }
    Value::Object(out)
}

/// The emulated AWS: each Region up or down, the global clusters and their members, every cluster's
/// status, and where the two CNAMEs point (with the cluster whose endpoint that is).
fn aws(s: &awsim::Snapshot, calls_seen: &[awsim::CallRecord]) -> Value {
    let regions: Vec<Value> = REGIONS
        .iter()
        .map(|r| json!({"region": r, "up": !s.regions_down.contains_key(*r)}))
        .collect();
    let endpoint_owner = |value: &str| {
        s.db_clusters.iter().find_map(|c| {
            if c.endpoint == value {
                Some(format!("{} writer endpoint", c.id))
            } else if c.reader_endpoint == value {
                Some(format!("{} reader endpoint", c.id))
            } else {
                None
            }
        })
    };
    let records: Vec<Value> = [("writer", RECORD_WRITER), ("reader", RECORD_READER)]
        .into_iter()
        .map(|(role, name)| {
            let value = s
                .hosted_zones
                .iter()
                .filter(|z| z.id == ZONE)
                .flat_map(|z| z.records.iter())
                .find(|r| r.name.trim_end_matches('.') == name && r.record_type == "CNAME")
                .and_then(|r| r.values.first().cloned());
            let owner = value.as_deref().and_then(endpoint_owner);
            json!({"role": role, "name": name, "value": value, "points_to": owner})
        })
        .collect();
    let globals: Vec<Value> = s
        .global_clusters
        .iter()
        .map(|g| {
            let members: Vec<Value> = g
                .members
                .iter()
                .map(|m| {
                    json!({"region": m.region, "cluster": m.cluster_id, "writer": m.is_writer,
                                "sync": m.synchronization_status})
                })
                .collect();
            json!({"id": g.id, "status": g.status, "members": members})
        })
        .collect();
    let clusters: Vec<Value> = s
        .db_clusters
        .iter()
        .map(|c| {
            json!({"id": c.id, "region": c.region, "status": c.status, "global": c.global_cluster_id,
                   "lag_ms": c.replication_lag_ms, "endpoint": c.endpoint})
        })
        .collect();
    json!({"regions": regions, "global_clusters": globals, "clusters": clusters, "records": records,
           "timings": s.timings, "faults": s.faults, "calls": calls(calls_seen)})
}

/// How many of the emulator's calls the page lists.
const CALLS_SHOWN: usize = 25;

/// The API calls worth a look, newest first: every call that changes something (not a Describe, List
/// or Get, nor IAM's simulator) and every call AWS refused or could not answer.
fn calls(all: &[awsim::CallRecord]) -> Vec<Value> {
    let reads = ["Describe", "List", "Get"];
    all.iter()
        .rev()
        .filter(|c| {
            let read = reads.iter().any(|r| c.action.starts_with(r)) || c.action == "SimulatePrincipalPolicy";
            !read || c.status != 200
        })
        .take(CALLS_SHOWN)
        .map(|c| {
            json!({"at": c.at, "region": c.region, "action": c.action, "status": c.status, "error": c.error,
                   "params": c.params})
        })
        .collect()
}

/// The latest request and its run: `{request_id, request_state, state}`, `state` the run's (`running`,
/// `needs attention`, `succeeded`, `failed`, `abandoned`) or `null` before one starts.
async fn run(store: &dyn Store) -> Value {
    let Ok(requests) = store.requests_since(jiff::Timestamp::MIN).await else {
        return Value::Null;
    };
    let Some(latest) = requests.into_iter().flatten().max_by_key(|r| (r.requested_at, r.id)) else {
        return Value::Null;
    };
    let run = store.run_of_request(latest.id).await.ok().flatten();
    json!({
        "request_id": latest.id.to_string(),
        "request_state": latest.state.as_str(),
        "state": run.map(|r| r.state.as_str().replace('_', " ")),
    })
}

/// One step of a run, from its journal: when it started and ended, and how.
#[derive(Debug, Serialize)]
struct Step {
    run: String,
    step: String,
    started_at: String,
    ended_at: Option<String>,
    duration_ms: Option<i64>,
    /// The event that ended it (`finished`, `failed`, `needs_attention`, ...), `None` while it runs.
    outcome: Option<String>,
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The scenario's timeline: `{entries, steps}`, `entries` the audit trail exactly as
/// `aurora-failover-bot audit --format jsonl` prints it (same order), `steps` each run step with its
/// duration, from the journal.
pub async fn timeline(store: &dyn Store) -> Value {
    let entries = match crate::audit::entries(store, jiff::Timestamp::MIN).await {
        Ok(e) => e,
        Err(e) => return json!({"error": format!("cannot read the audit trail: {e:#}")}),
    };
    let journal = store.journal_since(jiff::Timestamp::MIN).await.unwrap_or_default();
    let mut steps: Vec<Step> = Vec::new();
    let mut open: HashMap<(String, String), usize> = HashMap::new();
    for j in &journal {
        let key = (j.run_id.to_string(), j.step.clone());
        if j.event == "started" {
            open.insert(key.clone(), steps.len());
            steps.push(Step {
                run: key.0,
                step: key.1,
                started_at: rfc3339(j.at),
                ended_at: None,
                duration_ms: None,
                outcome: None,
            });
        } else if j.event != "observed"
            && let Some(i) = open.remove(&key)
        {
            let started: jiff::Timestamp = steps[i].started_at.parse().unwrap_or(j.at);
            steps[i].ended_at = Some(rfc3339(j.at));
            steps[i].duration_ms = Some(j.at.duration_since(started).as_millis() as i64);
            steps[i].outcome = Some(j.event.clone());
        }
    }
    json!({"entries": entries, "steps": steps})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(seq: u64, method: &str, body: Value, ts: Option<&str>) -> Recorded {
        Recorded {
            seq,
            method: method.to_owned(),
            body,
            ts: ts.map(str::to_owned),
            response_id: None,
            status: 200,
            at_ms: seq,
        }
    }

    #[test]
    fn the_channel_nests_replies_applies_edits_and_shows_ephemerals_only_to_their_user() {
        let mut response = call(
            5,
            "response",
            json!({"text": "only alice", "response_type": "ephemeral"}),
            None,
        );
        response.response_id = Some(7);
        let mut failed = call(
            6,
            "chat.postMessage",
            json!({"channel": CHANNEL, "text": "never shown"}),
            Some("9.9"),
        );
        failed.status = 429;
        let calls = [
            call(
                1,
                "chat.postMessage",
                json!({"channel": CHANNEL, "text": "request"}),
                Some("1.1"),
            ),
            call(
                2,
                "chat.postMessage",
                json!({"channel": CHANNEL, "text": "step", "thread_ts": "1.1"}),
                Some("2.2"),
            ),
            call(
                3,
                "chat.update",
                json!({"channel": CHANNEL, "ts": "2.2", "text": "step done",
                                          "blocks": [{"type": "divider"}]}),
                Some("2.2"),
            ),
            call(
                4,
                "chat.postMessage",
                json!({"channel": CHANNEL, "text": "done", "thread_ts": "1.1",
                                               "reply_broadcast": true}),
                Some("4.4"),
            ),
            response,
            failed,
            call(
                8,
                "chat.update",
                json!({"channel": CHANNEL, "ts": "4.4", "text": "done, edited"}),
                Some("4.4"),
            ),
        ];
        let origins = Origins {
            responses: HashMap::from([(7, "U0ALICE")]),
            ..Origins::default()
        };
        let notice = Local {
            after_seq: 1,
            n: 0,
            to: None,
            kind: LocalKind::Notice,
            text: "us-east-1 is down".into(),
            blocks: Value::Null,
            at: jiff::Timestamp::UNIX_EPOCH,
        };
        let refs: Vec<&Recorded> = calls.iter().collect();
        let m = messages(&refs, &[notice], &origins);
        let kinds: Vec<&str> = m.iter().map(|m| m["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["message", "notice", "broadcast", "response"]);
        let replies = m[0]["replies"].as_array().unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!(
            (replies[0]["text"].as_str(), replies[0]["edited"].as_bool()),
            (Some("step done"), Some(true))
        );
        assert_eq!(replies[0]["blocks"], json!([{"type": "divider"}]));
        assert_eq!(
            replies[1]["text"], "done, edited",
            "an edit reaches the reply in the thread"
        );
        assert_eq!(m[2]["text"], "done, edited", "and its copy in the channel");
        assert_eq!(m[3]["to"], "U0ALICE");
        assert!(!m.iter().any(|m| m["text"] == "never shown"));
    }

    #[test]
    fn a_modal_is_open_for_the_user_whose_click_made_the_trigger_until_it_closes() {
        let open = |seq, trigger: &str| {
            call(
                seq,
                "views.open",
                json!({"trigger_id": trigger,
                "view": {"type": "modal", "callback_id": "deny_reason", "blocks": [
                    {"type": "input", "block_id": "reason", "element": {"type": "plain_text_input", "action_id": "reason"}}]}}),
                None,
            )
        };
        let calls = [open(3, "1.1.standin-sandbox"), open(4, "forged")];
        let origins = Origins {
            triggers: HashMap::from([("1.1.standin-sandbox".to_owned(), "U0BOB")]),
            ..Origins::default()
        };
        assert!(open_modal(&calls[..1], &origins, "U0BOB", 0).is_some());
        assert!(open_modal(&calls[..1], &origins, "U0ALICE", 0).is_none(), "not alice's");
        assert!(
            open_modal(&calls[..1], &origins, "U0BOB", 3).is_none(),
            "closed after it opened"
        );
        assert!(
            open_modal(&calls, &origins, "U0BOB", 3).is_none(),
            "a trigger Slack never issued opens nothing"
        );
        let view = open_modal(&calls[..1], &origins, "U0BOB", 0).unwrap();
        let values = HashMap::from([("reason".to_owned(), "primary is fine".to_owned())]);
        assert_eq!(
            input_values(&view, &values),
            json!({"reason": {"reason": {"type": "plain_text_input", "value": "primary is fine"}}})
        );
        let blank = HashMap::from([("reason".to_owned(), "  ".to_owned())]);
        assert_eq!(input_values(&view, &blank)["reason"]["reason"]["value"], Value::Null);
    }
}
