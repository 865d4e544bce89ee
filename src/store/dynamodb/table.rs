//! The table itself: `create-table` (keys, indexes, on-demand billing, waiting until ACTIVE), the check
//! that an existing table has the right key schema, and the start-up check of the table's kind.
//!
//! Which tables the bot accepts (DescribeTable's `MultiRegionConsistency` and `Replicas`): a table
//! in one Region (no replicas), or a global table with multi-Region strong consistency (STRONG). A
//! global table with eventual consistency (EVENTUAL, the default) is refused unless
//! `store.single_instance = true`: on such a table two Regions can both win the same conditional
//! write (the last writer wins), so two bots could both take the same cluster or run.

use super::keys::{self, INDEXES};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, MultiRegionConsistency,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use std::time::Duration;

/// What kind of table DescribeTable shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    /// No replicas: one Region.
    SingleRegion,
    /// A global table with multi-Region strong consistency; its replicas' Regions.
    Strong { replicas: Vec<String> },
    /// A global table with multi-Region eventual consistency; its replicas' Regions.
    Eventual { replicas: Vec<String> },
}

/// The kind of a table, from its description.
pub fn kind_of(table: &TableDescription) -> TableKind {
    let replicas: Vec<String> = table
        .replicas()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_owned))
        .collect();
    if replicas.is_empty() {
        return TableKind::SingleRegion;
    }
    match table.multi_region_consistency() {
        Some(MultiRegionConsistency::Strong) => TableKind::Strong { replicas },
        // Absent means EVENTUAL (the default); an unknown future value is not known to be safe.
        _ => TableKind::Eventual { replicas },
    }
}

/// Whether the bot may run on a table of this kind: `Ok(None)`, `Ok(Some(warning))` (an eventually
/// consistent global table, allowed by `store.single_instance = true`), or `Err(why not)`.
pub fn judge(table: &str, kind: &TableKind, single_instance: bool) -> Result<Option<String>, String> {
    let TableKind::Eventual { replicas } = kind else {
        return Ok(None);
    };
    let why = format!(
        "table {table} is a global table with multi-Region eventual consistency (replicas in {}): two Regions \
         can both win the same conditional write there (the last writer wins), so two bots could both take \
         the same cluster",
        replicas.join(", ")
    );
    if single_instance {
        Ok(Some(format!(
            "{why}; running anyway because store.single_instance = true: run ONE bot on this table"
        )))
    } else {
        Err(format!(
            "config key store.table: {why}. Use a table with multi-Region strong consistency (MRSC), a table in \
             one Region, or set store.single_instance = true if only one bot ever uses it"
        ))
    }
}

/// A key: (partition attribute, sort attribute), both strings.
pub type KeyPair = (&'static str, &'static str);

/// The table's schema: its key and its global secondary indexes (name, key), every attribute a string
/// and every index projecting all attributes. What `create-table` creates, what the start-up check
/// requires, and what the templates under `deploy/` must declare.
pub fn schema() -> (KeyPair, Vec<(&'static str, KeyPair)>) {
    (
        (keys::PK, keys::SK),
        INDEXES.iter().map(|i| (i.name, (i.pk, i.sk))).collect(),
    )
}

/// What `create-table` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    /// It existed with the right keys and indexes.
    AlreadyThere,
}

/// Creates the store's table (on-demand billing), waiting until it is ACTIVE; an existing table is
/// fine when its key schema and indexes are the store's, an error naming the difference otherwise.
pub async fn create(client: &Client, table: &str) -> Result<Created, String> {
    let mut call = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(keys::PK, keys::SK)));
    let mut attrs = vec![keys::PK, keys::SK];
    for index in INDEXES {
        attrs.extend([index.pk, index.sk]);
        call = call.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(key_schema(index.pk, index.sk)))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    for a in attrs {
        call = call.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let created = match call.send().await {
        Ok(_) => Created::Created,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Created::AlreadyThere,
        Err(e) => return Err(format!("CreateTable {table}: {}", DisplayErrorContext(&e))),
    };
    let description = wait_active(client, table).await?;
    check_schema(&description)?;
    Ok(created)
}

fn key_schema(hash: &str, range: &str) -> Vec<KeySchemaElement> {
    [(hash, KeyType::Hash), (range, KeyType::Range)]
        .into_iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("name and type are set")
        })
        .collect()
}

/// DescribeTable once.
pub async fn describe(client: &Client, table: &str) -> Result<TableDescription, String> {
    let out = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| match e.as_service_error() {
            Some(s) if s.is_resource_not_found_exception() => {
                format!("config key store.table: table {table} does not exist (create it with `aurora-failover-bot create-table`)")
            }
            _ => format!("DescribeTable {table}: {}", DisplayErrorContext(&e)),
        })?;
    out.table
        .ok_or_else(|| format!("DescribeTable {table}: no table in the answer"))
}

/// Polls DescribeTable every second until the table is ACTIVE (at most 5 minutes).
async fn wait_active(client: &Client, table: &str) -> Result<TableDescription, String> {
    for _ in 0..300 {
        let d = describe(client, table).await?;
        if d.table_status() == Some(&TableStatus::Active) {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("table {table} did not become ACTIVE within 5 minutes"))
}

/// `Ok` when the table's key schema and indexes are the store's; otherwise what differs.
pub fn check_schema(table: &TableDescription) -> Result<(), String> {
    let name = table.table_name().unwrap_or("?");
    let keys_of = |schema: &[KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
            .collect()
    };
    let want = |hash: &str, range: &str| {
        vec![
            (hash.to_owned(), "HASH".to_owned()),
            (range.to_owned(), "RANGE".to_owned()),
        ]
    };
    let mut diffs = Vec::new();
    let have = keys_of(table.key_schema());
    if have != want(keys::PK, keys::SK) {
        let have: Vec<String> = have.iter().map(|(name, kind)| format!("{name} ({kind})")).collect();
        diffs.push(format!(
            "its key schema is {}, the store needs pk (HASH) and sk (RANGE)",
            have.join(", ")
        ));
    }
    for a in table.attribute_definitions() {
        if a.attribute_type() != &ScalarAttributeType::S {
            diffs.push(format!("attribute {} is not a string", a.attribute_name()));
        }
    }
    for index in INDEXES {
        match table
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(index.name))
        {
            None => diffs.push(format!("it has no global secondary index {}", index.name)),
            Some(g) if keys_of(g.key_schema()) != want(index.pk, index.sk) => diffs.push(format!(
                "index {} has keys {:?}, the store needs {} (HASH) and {} (RANGE)",
                index.name,
                keys_of(g.key_schema()),
                index.pk,
                index.sk
            )),
            Some(g) if g.projection().and_then(|p| p.projection_type()) != Some(&ProjectionType::All) => {
                diffs.push(format!("index {} does not project ALL attributes", index.name))
            }
            Some(_) => {}
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "table {name} exists but is not the store's: {}",
            diffs.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::ReplicaDescription;

    fn table(consistency: Option<MultiRegionConsistency>, replicas: &[&str]) -> TableDescription {
        let mut t = TableDescription::builder()
            .table_name("afb")
            .set_multi_region_consistency(consistency);
        for r in replicas {
            t = t.replicas(ReplicaDescription::builder().region_name(*r).build());
        }
        t.build()
    }

    #[test]
    fn a_table_in_one_region_or_a_strongly_consistent_global_table_is_accepted() {
        let single = table(None, &[]);
        assert_eq!(kind_of(&single), TableKind::SingleRegion);
        assert_eq!(judge("afb", &kind_of(&single), false), Ok(None));
        let strong = table(
            Some(MultiRegionConsistency::Strong),
            &["us-east-1", "us-east-2", "us-west-2"],
        );
        assert!(matches!(kind_of(&strong), TableKind::Strong { ref replicas } if replicas.len() == 3));
        assert_eq!(judge("afb", &kind_of(&strong), false), Ok(None));
    }

    #[test]
    fn an_eventually_consistent_global_table_is_refused_unless_one_instance_is_promised() {
        for t in [
            table(Some(MultiRegionConsistency::Eventual), &["us-east-1", "us-west-2"]),
            table(None, &["us-east-1", "us-west-2"]),
        ] {
            let kind = kind_of(&t);
            let why = judge("afb", &kind, false).unwrap_err();
            assert!(why.contains("store.table") && why.contains("last writer wins"), "{why}");
            assert!(why.contains("us-east-1, us-west-2"), "{why}");
            let warning = judge("afb", &kind, true).unwrap().unwrap();
            assert!(warning.contains("store.single_instance = true"), "{warning}");
        }
    }

    #[test]
    fn a_table_with_other_keys_is_named_with_its_difference() {
        let t = TableDescription::builder()
            .table_name("other")
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .build();
        let why = check_schema(&t).unwrap_err();
        assert!(why.contains("table other exists but is not the store's"), "{why}");
        assert!(why.contains("its key schema is id (HASH), the store needs"), "{why}");
        assert!(why.contains("no global secondary index gsi1"), "{why}");
    }
}
