//! Items as attribute maps: building them from the store's rows and reading them back, checked (a
//! value that cannot be read is a [`DecodeError`] naming the kind of item and its id).

use super::super::rows::*;
use super::keys::{self, Index, Key};
use crate::types::{ClusterName, Mode, Person, Region, SlackUserId};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An item with its key set.
pub fn keyed(key: &Key) -> Item {
    let mut item = Item::new();
    item.insert(keys::PK.into(), s(&key.0));
    item.insert(keys::SK.into(), s(&key.1));
    item
}

/// Sets an index's two key attributes on `item`.
pub fn index(item: &mut Item, index: Index, pk: String, sk: String) {
    item.insert(index.pk.into(), s(pk));
    item.insert(index.sk.into(), s(sk));
}

/// Sets `name` to `v` when it is given (an absent attribute is `None`).
pub fn opt(item: &mut Item, name: &str, v: Option<AttributeValue>) {
    if let Some(v) = v {
        item.insert(name.into(), v);
    }
}

/// Reads the attributes of one item, naming it in errors.
pub struct Fields<'a> {
    pub item: &'a Item,
    pub table: &'static str,
    pub key: String,
}

impl Fields<'_> {
    fn bad(&self, what: &str, why: impl std::fmt::Display) -> DecodeError {
        DecodeError::new(self.table, &self.key, format!("{what}: {why}"))
    }

    pub fn opt_str(&self, name: &str) -> std::result::Result<Option<String>, DecodeError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(_) => Err(self.bad(name, "not a string")),
        }
    }

    pub fn str(&self, name: &str) -> std::result::Result<String, DecodeError> {
        self.opt_str(name)?.ok_or_else(|| self.bad(name, "missing"))
    }

    pub fn opt_num(&self, name: &str) -> std::result::Result<Option<i64>, DecodeError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|e| self.bad(name, e)),
            Some(_) => Err(self.bad(name, "not a number")),
        }
    }

    pub fn num(&self, name: &str) -> std::result::Result<i64, DecodeError> {
        self.opt_num(name)?.ok_or_else(|| self.bad(name, "missing"))
    }

    pub fn opt_time(&self, name: &str) -> std::result::Result<Option<jiff::Timestamp>, DecodeError> {
        self.opt_num(name)?
            .map(|ms| jiff::Timestamp::from_millisecond(ms).map_err(|e| self.bad(name, e)))
            .transpose()
    }

    pub fn time(&self, name: &str) -> std::result::Result<jiff::Timestamp, DecodeError> {
        self.opt_time(name)?.ok_or_else(|| self.bad(name, "missing"))
    }

    pub fn opt_parsed<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> std::result::Result<Option<T>, DecodeError> {
        self.opt_str(name)?
            .map(|v| parse(&v).ok_or_else(|| self.bad(name, format!("{v:?} cannot be read"))))
            .transpose()
    }

    pub fn parsed<T>(&self, name: &str, parse: impl Fn(&str) -> Option<T>) -> std::result::Result<T, DecodeError> {
        self.opt_parsed(name, parse)?.ok_or_else(|| self.bad(name, "missing"))
    }
}

/// The id stored in an item (`id`), for naming it in errors before anything else is read.
fn id_of(item: &Item) -> String {
    match item.get("id") {
        Some(AttributeValue::N(v)) => v.clone(),
        _ => item
            .get(keys::PK)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
    }
}

fn fields<'a>(item: &'a Item, table: &'static str) -> Fields<'a> {
    Fields {
        item,
        table,
        key: id_of(item),
    }
}

/// A new request (state `planning`) as an item.
pub fn new_request(id: RequestId, r: &NewRequest) -> Item {
    let mut item = keyed(&keys::request(id));
    let state = RequestState::Planning.as_str();
    index(
        &mut item,
        keys::BY_STATE,
        keys::request_state(state),
        keys::pad(id.get()),
    );
    index(
        &mut item,
        keys::BY_GROUP,
        format!("REQC#{}", r.cluster),
        keys::pad(id.get()),
    );
    index(&mut item, keys::BY_TIME, keys::ALL_REQUESTS.into(), keys::pad(id.get()));
    item.insert("id".into(), n(id.get()));
    item.insert("cluster".into(), s(r.cluster.as_str()));
    item.insert("mode".into(), s(r.mode.map_or("auto", Mode::as_str)));
    item.insert("requested_by".into(), s(r.requested_by.to_string()));
    item.insert("requested_at".into(), n(r.requested_at.as_millisecond()));
    opt(&mut item, "to_region", r.to_region.as_ref().map(|v| s(v.as_str())));
    item.insert("origin_channel".into(), s(&r.origin_channel));
    opt(&mut item, "response_url", r.response_url.as_ref().map(s));
    item.insert("expires_at".into(), n(r.expires_at.as_millisecond()));
    item.insert("state".into(), s(state));
    opt(&mut item, "reason", r.reason.as_ref().map(s));
    opt(&mut item, "ticket", r.ticket.as_ref().map(s));
    item.insert("approvals".into(), s(Approval::encode_all(&[])));
    item
}

pub fn request(item: &Item) -> Stored<Request> {
    let f = fields(item, "requests");
    Ok(Request {
        id: RequestId::new(f.num("id")?),
        cluster: f.parsed("cluster", ClusterName::parse)?,
        mode: match f.str("mode")?.as_str() {
            "auto" => None,
            _ => Some(f.parsed("mode", Mode::parse)?),
        },
        requested_by: f.parsed("requested_by", Person::parse)?,
        requested_at: f.time("requested_at")?,
        to_region: f.opt_parsed("to_region", Region::parse)?,
        origin_channel: f.str("origin_channel")?,
        response_url: f.opt_str("response_url")?,
        expires_at: f.time("expires_at")?,
        state: f.parsed("state", RequestState::parse)?,
        plan: f.opt_str("plan")?,
        decided_by: f.opt_parsed("decided_by", Person::parse)?,
        decided_at: f.opt_time("decided_at")?,
        note: f.opt_str("note")?,
        message: f.opt_num("message")?.map(OutboxId::new),
        reason: f.opt_str("reason")?,
        ticket: f.opt_str("ticket")?,
        // Items written before approval policies have none: no approvals yet.
        approvals: match f.opt_str("approvals")? {
            None => Vec::new(),
            Some(a) => Approval::decode_all(&a).ok_or_else(|| f.bad("approvals", &a))?,
        },
    })
}

/// A new run (state `running`) as an item; its id is its request's.
pub fn new_run(id: RunId, cluster: Option<&str>, first_step: &str, data: &str, now: jiff::Timestamp) -> Item {
    let mut item = keyed(&keys::run(id));
    let state = RunState::Running.as_str();
    index(&mut item, keys::BY_STATE, keys::run_state(state), keys::pad(id.get()));
    if let Some(c) = cluster {
        index(&mut item, keys::BY_GROUP, format!("RUNC#{c}"), keys::pad(id.get()));
        item.insert("cluster".into(), s(c));
    }
    item.insert("id".into(), n(id.get()));
    item.insert("request_id".into(), n(id.get()));
    item.insert("state".into(), s(state));
    item.insert("step".into(), s(first_step));
    item.insert("data".into(), s(data));
    item.insert("started_at".into(), n(now.as_millisecond()));
    item
}

pub fn run(item: &Item) -> Stored<Run> {
    let f = fields(item, "runs");
    let user = |name: &str| f.opt_parsed(name, SlackUserId::parse);
    Ok(Run {
        id: RunId::new(f.num("id")?),
        request_id: RequestId::new(f.num("request_id")?),
        state: f.parsed("state", RunState::parse)?,
        step: f.str("step")?,
        data: f.str("data")?,
        started_at: f.time("started_at")?,
        finished_at: f.opt_time("finished_at")?,
        control: RunControl {
            resume_asked_by: user("resume_asked_by")?,
            resume_asked_at: f.opt_num("resume_asked_at")?,
            resumed_by: user("resumed_by")?,
            abandoned_by: f.opt_parsed("abandoned_by", Person::parse)?,
            abandon_reason: f.opt_str("abandon_reason")?,
        },
    })
}

pub fn journal_line(e: &JournalEntry) -> Item {
    let mut item = keyed(&keys::journal(e.run_id, e.seq));
    let order = format!("{}#{}#{}", keys::ms(e.at), keys::pad(e.run_id.get()), keys::pad(e.seq));
    index(&mut item, keys::BY_TIME, keys::JOURNAL.into(), order);
    item.insert("run_id".into(), n(e.run_id.get()));
    item.insert("seq".into(), n(e.seq));
    item.insert("at".into(), n(e.at.as_millisecond()));
    item.insert("step".into(), s(&e.step));
    item.insert("event".into(), s(&e.event));
    item.insert("detail".into(), s(&e.detail));
    item
}

/// A journal line; one that cannot be read is an error (a journal is read whole or not at all).
pub fn journal_entry(item: &Item) -> std::result::Result<JournalEntry, DecodeError> {
    let f = Fields {
        item,
        table: "journal",
        key: format!("{}/{}", id_of_num(item, "run_id"), id_of_num(item, "seq")),
    };
    Ok(JournalEntry {
        run_id: RunId::new(f.num("run_id")?),
        seq: f.num("seq")?,
        at: f.time("at")?,
        step: f.str("step")?,
        event: f.str("event")?,
        detail: f.str("detail")?,
    })
}

fn id_of_num(item: &Item, name: &str) -> String {
    item.get(name).and_then(|v| v.as_n().ok()).cloned().unwrap_or_default()
}

pub fn audit_entry(item: &Item) -> std::result::Result<AuditEntry, DecodeError> {
    let f = fields(item, "audit");
    Ok(AuditEntry {
        at: f.time("at")?,
        user: f.str("user")?,
        action: f.str("action")?,
        request_id: f.opt_num("request_id")?.map(RequestId::new),
        outcome: f.str("outcome")?,
    })
}

/// A new outbox item (pending) as an item.
pub fn new_outbox(id: OutboxId, m: &Outgoing<'_>, now: jiff::Timestamp) -> Item {
    let mut item = keyed(&keys::outbox(id));
    let order = keys::pad(id.get());
    index(&mut item, keys::BY_STATE, keys::PENDING_OUTBOX.into(), order.clone());
    index(&mut item, keys::BY_TIME, keys::ALL_OUTBOX.into(), order.clone());
    if let Some(url) = m.response_url {
        index(&mut item, keys::BY_GROUP, format!("OURL#{url}"), order);
        item.insert("response_url".into(), s(url));
    }
    item.insert("id".into(), n(id.get()));
    item.insert("ordering_key".into(), s(m.ordering_key));
    item.insert("kind".into(), s(m.kind));
    opt(&mut item, "channel", m.channel.map(|c| s(c.as_str())));
    opt(&mut item, "target", m.target.map(|t| n(t.get())));
    item.insert("body".into(), s(m.body));
    item.insert("attempts".into(), n(0));
    item.insert("next_attempt_at".into(), n(now.as_millisecond()));
    item.insert("state".into(), s("pending"));
    opt(&mut item, "dedup_key", m.dedup_key.map(s));
    item
}

/// An outbox item; one that cannot be read is an error naming it.
pub fn outbox_item(item: &Item) -> std::result::Result<OutboxItem, DecodeError> {
    let f = fields(item, "outbox");
    Ok(OutboxItem {
        id: OutboxId::new(f.num("id")?),
        ordering_key: f.str("ordering_key")?,
        kind: f.str("kind")?,
        channel: f.opt_str("channel")?,
        target: f.opt_num("target")?.map(OutboxId::new),
        response_url: f.opt_str("response_url")?,
        body: f.str("body")?,
        attempts: f.num("attempts")?,
        next_attempt_at: f.time("next_attempt_at")?,
        delivered_ts: f.opt_str("delivered_ts")?,
        state: f.str("state")?,
        last_error: f.opt_str("last_error")?,
        dedup_key: f.opt_str("dedup_key")?,
        started_at: f.opt_time("started_at")?,
        via: f.opt_str("via")?,
    })
}

pub fn new_response_url(r: &ResponseUrl) -> Item {
    let mut item = keyed(&keys::response_url(&r.url));
    let bucket = keys::response_url_bucket(keys::hour_bucket(r.issued_at));
    index(
        &mut item,
        keys::BY_TIME,
        bucket,
        format!("{}#{}", keys::ms(r.issued_at), r.url),
    );
    item.insert("url".into(), s(&r.url));
    item.insert("user".into(), s(&r.user));
    item.insert("channel".into(), s(&r.channel));
    item.insert("issued_at".into(), n(r.issued_at.as_millisecond()));
    item
}

pub fn response_url(item: &Item) -> std::result::Result<ResponseUrl, DecodeError> {
    let f = fields(item, "response_urls");
    Ok(ResponseUrl {
        url: f.str("url")?,
        user: f.str("user")?,
        channel: f.str("channel")?,
        issued_at: f.time("issued_at")?,
    })
}

pub fn new_signature(sig: &str, now: jiff::Timestamp) -> Item {
    let mut item = keyed(&keys::signature(sig));
    let bucket = keys::signature_bucket(keys::hour_bucket(now));
    index(&mut item, keys::BY_TIME, bucket, format!("{}#{sig}", keys::ms(now)));
    item.insert("at".into(), n(now.as_millisecond()));
    item
}

/// The `pk` and `sk` of an item read from an index (every projection carries them).
pub fn key_of(item: &Item) -> Option<Key> {
    let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    Some((get(keys::PK)?, get(keys::SK)?))
}

/// A cluster's recorded global cluster as a decodable item (what `record_global_cluster` sets).
pub fn global_cluster_record(item: &Item) -> Stored<GlobalClusterRecord> {
    let f = Fields {
        item,
        table: "global_cluster_records",
        key: key_of(item).map(|k| k.0).unwrap_or_default(),
    };
    Ok(GlobalClusterRecord {
        cluster: f.parsed("cluster", ClusterName::parse)?,
        global_cluster_id: f.str("global_cluster_id")?,
        request: RequestId::new(f.num("request_id")?),
        recorded_at: f.time("recorded_at")?,
        replaces: f.str("replaces")?,
    })
}
