//! The DynamoDB store (`[store] backend = "dynamodb"`): one table shared by bots in several Regions,
//! each using its own Region's replica.
//!
//! # Why one conditional write on one item per operation
//!
//! The bot is only safe across Regions on a global table with multi-Region strong consistency
//! (MRSC): there a conditional write is decided once for every Region. Such tables do not support
//! transactions (`TransactWriteItems`, `TransactGetItems`) nor Time to Live (DynamoDB developer
//! guide, "How DynamoDB global tables work", section "Multi-Region strong consistency (MRSC)",
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html>).
//! So every operation of the [`Store`] contract is one `PutItem`, `UpdateItem` or `DeleteItem` on one
//! item, with a condition expression where the contract has a compare-and-set, and old items are
//! pruned by the bot (see below), not by a TTL.
//!
//! - Ids: counters (`COUNTER#request`, `COUNTER#outbox`), one `UpdateItem ... ADD` each. A run's id is
//!   its request's id: `create_run` is one put-if-absent of `RUN#<request>` (one run per request).
//! - Put-if-absent: `attribute_not_exists(pk)`. Compare-and-set: a condition on `state` (and the
//!   other attributes the contract names). See `call.rs` for how `ConditionalCheckFailedException`
//!   and `ReplicatedWriteConflictException` are answered: "lost", never an error; "unknown", read
//!   back and sent again, never "lost".
//! - Every read that decides a write is strongly consistent (`ConsistentRead = true`): every
//!   `GetItem` and every Query on the table itself.
//!
//! # Listings
//!
//! Listings come from Queries: on one partition of the table (a run's journal: strongly consistent)
//! or on a partition of one of three global secondary indexes (`keys.rs` has the layout). A global
//! secondary index is eventually consistent, so an item written a moment ago may be missing from it
//! (typically for less than a second) and an item listed may be stale. Where the caller decides
//! something from an item's state (requests and runs in an open state, cluster locks, outbox heads,
//! response_url uses) each listed item is read again, strongly consistently, and kept only if it
//! still qualifies; items in a state that never changes again are taken as listed. The callers of
//! those listings poll (the outbox, the expiry) or run at start-up, so an item missed once is seen
//! at the next tick. Nothing scans the table.
//!
//! # Pruning without TTL
//!
//! Signatures (`SIG#`) and response_urls (`URL#`) are also indexed in 24 time buckets (`SIGT#<hour
//! of day>`, `URLT#<hour of day>`, sorted by time): `forget_*_before` queries the buckets, newest
//! hour first, for items older than the cut-off and deletes at most `batch` of them. Nothing about a
//! request, a run or its journal is ever deleted.
//!
//! # Leases and fencing
//!
//! See `lease.rs`: a lease is one item taken by a conditional write; a fenced write checks the lease
//! (strongly consistent read) and, for a run's item and journal, is conditional on the run's `fence`
//! token, which a new holder stamps at takeover (`adopt_run`), tombstoning journal numbers an old
//! holder reserved and never wrote.
//!
//! # Durability
//!
//! A write DynamoDB acknowledged is durable in its Region (and, on an MRSC table, in a second one).

mod call;
mod item;
mod keys;
mod lease;
mod ops;
pub mod table;
#[cfg(test)]
pub(super) mod tests;

use crate::store::{Result, StoreError};
use call::Table;
pub use table::{Created, TableKind};

/// The DynamoDB implementation of [`Store`](crate::store::Store).
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    table: Table,
}

impl DynamoDbStore {
    /// Opens the store on `table`: checks (DescribeTable) that it exists with the store's keys and
    /// indexes, and that its kind is safe ([`table::judge`]). Returns the store and, for an eventually
    /// consistent global table allowed by `single_instance`, the warning to log. Errors name the
    /// config key (`store.table`) and the reason.
    pub async fn open(
        client: aws_sdk_dynamodb::Client,
        table: &str,
        single_instance: bool,
    ) -> Result<(DynamoDbStore, Option<String>)> {
        let warning = DynamoDbStore::check(&client, table, single_instance)
            .await
            .map_err(StoreError::Unusable)?;
        Ok((DynamoDbStore::on(client, table), warning))
    }

    /// The checks `open` makes, read-only (one DescribeTable): `Ok(warning)` when the bot may use the
    /// table, `Err(why not)` naming `store.table` otherwise. `check-config` shows it.
    pub async fn check(
        client: &aws_sdk_dynamodb::Client,
        table: &str,
        single_instance: bool,
    ) -> std::result::Result<Option<String>, String> {
        let description = table::describe(client, table).await?;
        table::check_schema(&description).map_err(|why| format!("config key store.table: {why}"))?;
        table::judge(table, &table::kind_of(&description), single_instance)
    }

    /// The store on `table`, without any check (tests, after `create`).
    pub fn on(client: aws_sdk_dynamodb::Client, table: &str) -> DynamoDbStore {
        DynamoDbStore {
            table: Table {
                client,
                name: table.to_owned(),
            },
        }
    }

    /// `create-table`: creates the store's table and waits until it is ACTIVE (see [`table::create`]).
    pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> std::result::Result<Created, String> {
        table::create(client, table).await
    }
}
