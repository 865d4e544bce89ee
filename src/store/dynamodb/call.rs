//! The DynamoDB calls the store makes, each in one place: a strongly consistent read, a Query, an
//! id counter, and the conditional write, which turns DynamoDB's answers into the contract's:
//!
//! - `ConditionalCheckFailedException` is an answer ("lost"), never an error, except when the item
//!   it returns (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) carries this very write's token:
//!   then an earlier attempt of the same call (retried by the SDK after a timeout) applied it.
//! - `ReplicatedWriteConflictException` (a concurrent write from another Region on a multi-Region
//!   strongly consistent table) means "unknown": the item is read back (strongly consistent); the
//!   write applied if the item carries its token (a delete: if the item is gone); otherwise it is
//!   sent again, a few times, with a short backoff.
//!
//! Every conditional put or update sets the attribute `w` to a token made for that call.

use super::item::{Item, n, s};
use super::keys::{self, Index, Key};
use crate::store::{Result, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_types::error::display::DisplayErrorContext;
use std::collections::HashMap;
use std::time::Duration;

/// The attribute holding the token of the last conditional write that applied to an item.
pub const TOKEN: &str = "w";

/// How many times a write that met a replicated write conflict is sent again before it is an error.
const CONFLICT_ATTEMPTS: u32 = 6;

/// What a write attempt's error says.
pub enum Failure {
    /// The condition did not hold; the item as it is, when DynamoDB returned it.
    Condition(Option<Item>),
    /// A concurrent write from another Region: the outcome is unknown.
    Conflict,
    /// Anything else: the call failed.
    Other(String),
}

/// The write operations' errors, sorted into [`Failure`]s.
pub trait Classify {
    fn classify(self) -> Failure;
}

macro_rules! classify {
    ($($error:ty),*) => {$(
        impl Classify for $error {
            fn classify(self) -> Failure {
                match self {
                    Self::ConditionalCheckFailedException(e) => Failure::Condition(e.item),
                    Self::ReplicatedWriteConflictException(_) => Failure::Conflict,
                    other => Failure::Other(DisplayErrorContext(&other).to_string()),
                }
            }
        }
    )*};
}

classify!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

fn failure<E, R>(e: SdkError<E, R>) -> Failure
where
    E: Classify + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(context) => context.into_err().classify(),
        other => Failure::Other(DisplayErrorContext(&other).to_string()),
    }
}

fn error(call: &str, table: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::DynamoDb(format!("{call} on table {table}: {why}"))
}

/// A fresh write token.
pub fn token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// An update: what it sets, adds and removes, and the condition it needs (`#name` for an attribute,
/// `:name` for a value given with [`Change::value`]).
#[derive(Debug, Clone, Default)]
pub struct Change {
    condition: Option<String>,
    values: Item,
    sets: Vec<(String, AttributeValue)>,
    sets_if_absent: Vec<(String, AttributeValue)>,
    adds: Vec<(String, AttributeValue)>,
    removes: Vec<String>,
}

impl Change {
    /// An update applied only when `condition` holds of the item (which must exist).
    pub fn when(condition: &str) -> Change {
        Change {
            condition: Some(format!("attribute_exists(#pk) AND ({condition})")),
            ..Change::default()
        }
    }

    /// An update of an item that exists, whatever its attributes.
    pub fn existing() -> Change {
        Change {
            condition: Some("attribute_exists(#pk)".into()),
            ..Change::default()
        }
    }

    /// Adds `condition` to the change's condition.
    pub fn and(mut self, condition: &str) -> Change {
        self.condition = Some(match self.condition {
            Some(c) => format!("{c} AND ({condition})"),
            None => condition.to_owned(),
        });
        self
    }

    pub fn value(mut self, name: &str, v: AttributeValue) -> Change {
        self.values.insert(name.into(), v);
        self
    }

    pub fn set(mut self, attr: &str, v: AttributeValue) -> Change {
        self.sets.push((attr.into(), v));
        self
    }

    /// Sets `attr` when `v` is given, removes it otherwise.
    pub fn set_or_remove(self, attr: &str, v: Option<AttributeValue>) -> Change {
        match v {
            Some(v) => self.set(attr, v),
            None => self.remove(attr),
        }
    }

    pub fn set_if_absent(mut self, attr: &str, v: AttributeValue) -> Change {
        self.sets_if_absent.push((attr.into(), v));
        self
    }

    pub fn add(mut self, attr: &str, v: AttributeValue) -> Change {
        self.adds.push((attr.into(), v));
        self
    }

    pub fn remove(mut self, attr: &str) -> Change {
        self.removes.push(attr.into());
        self
    }

    /// Sets an index's key attributes.
    pub fn index(self, index: Index, pk: String, sk: String) -> Change {
        self.set(index.pk, s(pk)).set(index.sk, s(sk))
    }

    /// Takes the item out of an index (a sparse index).
    pub fn unindex(self, index: Index) -> Change {
        self.remove(index.pk).remove(index.sk)
    }

    /// The update expression, its names and values.
    fn expression(&self, token: &str) -> (String, HashMap<String, String>, Item) {
        let mut names = HashMap::from([("#pk".to_owned(), keys::PK.to_owned())]);
        let mut values = self.values.clone();
        let mut sets = vec![format!("#{TOKEN} = :{TOKEN}")];
        values.insert(format!(":{TOKEN}"), s(token));
        names.insert(format!("#{TOKEN}"), TOKEN.into());
        for (a, v) in &self.sets {
            sets.push(format!("#{a} = :set_{a}"));
            values.insert(format!(":set_{a}"), v.clone());
        }
        for (a, v) in &self.sets_if_absent {
            sets.push(format!("#{a} = if_not_exists(#{a}, :new_{a})"));
            values.insert(format!(":new_{a}"), v.clone());
        }
        let mut expr = format!("SET {}", sets.join(", "));
        if !self.adds.is_empty() {
            let adds: Vec<String> = self.adds.iter().map(|(a, _)| format!("#{a} :add_{a}")).collect();
            expr.push_str(&format!(" ADD {}", adds.join(", ")));
            for (a, v) in &self.adds {
                values.insert(format!(":add_{a}"), v.clone());
            }
        }
        if !self.removes.is_empty() {
            let removes: Vec<String> = self.removes.iter().map(|a| format!("#{a}")).collect();
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let attrs = self
            .sets
            .iter()
            .chain(&self.sets_if_absent)
            .chain(&self.adds)
            .map(|(a, _)| a)
            .chain(&self.removes);
        for a in attrs {
            names.insert(format!("#{a}"), a.clone());
        }
        names_in(self.condition.as_deref().unwrap_or(""), &mut names);
        (expr, names, values)
    }
}

/// Registers every `#name` placeholder of `expr` as the attribute `name`.
fn names_in(expr: &str, names: &mut HashMap<String, String>) {
    let mut rest = expr;
    while let Some(at) = rest.find('#') {
        let tail = &rest[at + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if end > 0 {
            names.insert(format!("#{}", &tail[..end]), tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
}

/// A key condition on a Query's sort key.
#[derive(Debug, Clone)]
pub enum Sk {
    Begins(String),
    AtLeast(String),
    Below(String),
}

/// One Query: a partition of the table (strongly consistent) or of an index (eventually consistent:
/// a global secondary index cannot be read strongly consistently).
#[derive(Debug, Clone)]
pub struct Query {
    pub index: Option<Index>,
    pub pk: String,
    pub sk: Option<Sk>,
    pub forward: bool,
    pub limit: Option<usize>,
}

impl Query {
    pub fn on(index: Option<Index>, pk: impl Into<String>) -> Query {
        Query {
            index,
            pk: pk.into(),
            sk: None,
            forward: true,
            limit: None,
        }
    }

    pub fn sk(mut self, sk: Sk) -> Query {
        self.sk = Some(sk);
        self
    }

    pub fn newest_first(mut self) -> Query {
        self.forward = false;
        self
    }

    pub fn limit(mut self, n: usize) -> Query {
        self.limit = Some(n);
        self
    }
}

/// The table and its client.
#[derive(Debug, Clone)]
pub struct Table {
    pub client: Client,
    pub name: String,
}

impl Table {
    /// The item at `key`, read strongly consistently.
    pub async fn get(&self, key: &Key) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(keys::PK, s(&key.0))
            .key(keys::SK, s(&key.1))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| error("GetItem", &self.name, DisplayErrorContext(&e)))?;
        Ok(out.item)
    }

    /// Every item of a Query, page after page (up to its limit).
    pub async fn query(&self, q: &Query) -> Result<Vec<Item>> {
        let (pk_attr, sk_attr) = q.index.map_or((keys::PK, keys::SK), |i| (i.pk, i.sk));
        let (cond, sk_value) = match &q.sk {
            None => ("#p = :p".to_owned(), None),
            Some(Sk::Begins(v)) => ("#p = :p AND begins_with(#s, :s)".to_owned(), Some(v)),
            Some(Sk::AtLeast(v)) => ("#p = :p AND #s >= :s".to_owned(), Some(v)),
            Some(Sk::Below(v)) => ("#p = :p AND #s < :s".to_owned(), Some(v)),
        };
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut call = self
                .client
                .query()
                .table_name(&self.name)
                .set_index_name(q.index.map(|i| i.name.to_owned()))
                .consistent_read(q.index.is_none())
                .key_condition_expression(&cond)
                .expression_attribute_names("#p", pk_attr)
                .expression_attribute_values(":p", s(&q.pk))
                .scan_index_forward(q.forward)
                .set_exclusive_start_key(start.take());
            if let Some(v) = sk_value {
                call = call
                    .expression_attribute_names("#s", sk_attr)
                    .expression_attribute_values(":s", s(v));
            }
            if let Some(limit) = q.limit {
                call = call.limit(i32::try_from(limit.saturating_sub(items.len())).unwrap_or(i32::MAX));
            }
            let out = call
                .send()
                .await
                .map_err(|e| error("Query", &self.name, DisplayErrorContext(&e)))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() || q.limit.is_some_and(|l| items.len() >= l) {
                return Ok(items);
            }
        }
    }

    /// Adds one to the counter `name` and returns its new value (one UpdateItem with ADD). A
    /// conflicting write from another Region is retried: a number taken twice leaves a gap, which is
    /// harmless.
    pub async fn next(&self, name: &str) -> Result<i64> {
        let key = keys::counter(name);
        for attempt in 0..CONFLICT_ATTEMPTS {
            let sent = self
                .client
                .update_item()
                .table_name(&self.name)
                .key(keys::PK, s(&key.0))
                .key(keys::SK, s(&key.1))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match sent.map_err(failure) {
                Ok(out) => {
                    let v = out
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get("n"))
                        .and_then(|v| v.as_n().ok());
                    return v
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| error("UpdateItem", &self.name, format!("counter {name} has no number")));
                }
                Err(Failure::Conflict) => backoff(attempt).await,
                Err(Failure::Condition(_)) => unreachable!("the counter's update has no condition"),
                Err(Failure::Other(why)) => return Err(error("UpdateItem", &self.name, why)),
            }
        }
        Err(self.kept_conflicting("UpdateItem", &key))
    }

    /// Puts `item` unless an item with its key exists: `true` if this call wrote it.
    pub async fn put_new(&self, item: Item) -> Result<bool> {
        let key = super::item::key_of(&item).expect("an item built with its key");
        let token = token();
        let mut item = item;
        item.insert(TOKEN.into(), s(&token));
        let call = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let outcome = self
            .conditional("PutItem", &key, Some(&token), || {
                let call = call.clone();
                async move { call.send().await.map(|_| Item::new()).map_err(failure) }
            })
            .await?;
        Ok(outcome.is_some())
    }

    /// Puts `item` whatever is there (an audit line: its key is unique).
    pub async fn put(&self, item: Item) -> Result<()> {
        let key = super::item::key_of(&item).expect("an item built with its key");
        for attempt in 0..CONFLICT_ATTEMPTS {
            let sent = self
                .client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(item.clone()))
                .send()
                .await;
            match sent.map_err(failure) {
                Ok(_) => return Ok(()),
                Err(Failure::Conflict) => backoff(attempt).await,
                Err(Failure::Condition(_)) => unreachable!("an unconditional put"),
                Err(Failure::Other(why)) => return Err(error("PutItem", &self.name, why)),
            }
        }
        Err(self.kept_conflicting("PutItem", &key))
    }

    /// Applies `change` to the item at `key` if its condition holds: the item after the change
    /// (`Some`), or `None` when the condition did not hold (or the item does not exist).
    pub async fn update(&self, key: &Key, change: Change) -> Result<Option<Item>> {
        let token = token();
        let (expr, names, values) = change.expression(&token);
        let call = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(keys::PK, s(&key.0))
            .key(keys::SK, s(&key.1))
            .update_expression(expr)
            .set_condition_expression(change.condition.clone())
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        self.conditional("UpdateItem", key, Some(&token), || {
            let call = call.clone();
            async move {
                call.send()
                    .await
                    .map(|out| out.attributes.unwrap_or_default())
                    .map_err(failure)
            }
        })
        .await
    }

    /// Deletes the item at `key` if `condition` holds (`#name`, `:name` as in [`Change`]): the item
    /// deleted, or `None` (the condition did not hold, or there was no item).
    pub async fn delete_if(&self, key: &Key, condition: &str, values: Item) -> Result<Option<Item>> {
        let mut names = HashMap::from([("#pk".to_owned(), keys::PK.to_owned())]);
        let condition = format!("attribute_exists(#pk) AND ({condition})");
        names_in(&condition, &mut names);
        let call = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key(keys::PK, s(&key.0))
            .key(keys::SK, s(&key.1))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values(ReturnValue::AllOld);
        self.conditional("DeleteItem", key, None, || {
            let call = call.clone();
            async move {
                call.send()
                    .await
                    .map(|out| out.attributes.unwrap_or_default())
                    .map_err(failure)
            }
        })
        .await
    }

    /// Runs one conditional write to its answer (see the module documentation). `token`: the write's
    /// token (`None` for a delete, which applied when the item is gone).
    async fn conditional<F, Fut>(&self, call: &str, key: &Key, token: Option<&str>, send: F) -> Result<Option<Item>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Item, Failure>>,
    {
        let ours =
            |item: &Item| token.is_some_and(|t| item.get(TOKEN).and_then(|v| v.as_s().ok()) == Some(&t.to_owned()));
        for attempt in 0..CONFLICT_ATTEMPTS {
            match send().await {
                Ok(item) => return Ok(Some(item)),
                Err(Failure::Condition(Some(now))) if ours(&now) => return Ok(Some(now)),
                Err(Failure::Condition(_)) => return Ok(None),
                Err(Failure::Other(why)) => return Err(error(call, &self.name, why)),
                Err(Failure::Conflict) => {
                    let now = self.get(key).await?;
                    match (&now, token) {
                        (Some(item), Some(_)) if ours(item) => return Ok(now),
                        (None, None) => return Ok(Some(Item::new())),
                        _ => {
                            tracing::info!(call, pk = %key.0, "a concurrent write from another Region: sending again");
                            backoff(attempt).await;
                        }
                    }
                }
            }
        }
        Err(self.kept_conflicting(call, key))
    }

    fn kept_conflicting(&self, call: &str, key: &Key) -> StoreError {
        error(
            call,
            &self.name,
            format!("item {} kept meeting concurrent writes from another Region", key.0),
        )
    }
}

/// 20, 40, 80, ... ms, with jitter.
async fn backoff(attempt: u32) {
    let ms = 20u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(ms + fastrand::u64(..=ms))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_names_every_attribute_it_touches_and_sets_its_token() {
        let change = Change::when("#state = :from")
            .value(":from", s("pending"))
            .set("state", s("approved"))
            .add("attempts", n(1))
            .remove("last_error");
        let (expr, names, values) = change.expression("tok");
        assert_eq!(
            expr,
            "SET #w = :w, #state = :set_state ADD #attempts :add_attempts REMOVE #last_error"
        );
        for name in ["#pk", "#w", "#state", "#attempts", "#last_error"] {
            assert!(names.contains_key(name), "{name} in {names:?}");
        }
        assert_eq!(values.get(":w"), Some(&s("tok")));
        assert_eq!(values.get(":from"), Some(&s("pending")));
    }
}
