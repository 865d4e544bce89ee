//! The two-Region deployment example (`deploy/two-regions/`, CloudFormation) against what the bot
//! needs: the table's keys and index (the store's schema, whose source of truth is the
//! `create-table` subcommand), the table's kind (multi-Region strong consistency, the only kind on
//! which the lease is safe), and the task role, which must grant exactly the statements of
//! `deploy/iam-policy.json` (itself checked against the bot's calls in `iam_policy`) plus the store's
//! DynamoDB actions on the Region's own replica. cfn-lint checks the templates' syntax and types
//! (`scripts/lint-templates`, run by `.ci/run`); these tests check their meaning.
//!
//! The templates are read with yaml-rust2, which keeps the value under a CloudFormation short-form
//! tag and drops the tag: `!Ref X` reads as `"X"`, `!Sub "arn:...${Y}"` as the string with `${Y}`.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use yaml_rust2::{Yaml, YamlLoader};

const TABLE_TEMPLATE: &str = include_str!("../../deploy/two-regions/table.yaml");
const SERVICE_TEMPLATE: &str = include_str!("../../deploy/two-regions/service.yaml");
const IAM_POLICY: &str = include_str!("../../deploy/iam-policy.json");

/// A template as JSON (the shape CloudFormation itself accepts), short-form tags dropped.
fn template(name: &str, text: &str) -> Value {
    let mut docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{name} holds one document");
    json_of(&docs.remove(0))
}

fn json_of(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => json!(i),
        Yaml::Boolean(b) => json!(b),
        Yaml::Null => Value::Null,
        Yaml::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), json_of(v)))
                .collect(),
        ),
        other => panic!("not a value a template holds: {other:?}"),
    }
}

/// One resource's `Properties`.
fn properties<'a>(template: &'a Value, resource: &str) -> &'a Value {
    let found = &template["Resources"][resource];
    assert!(found.is_object(), "no resource {resource}");
    &found["Properties"]
}

/// One key attribute: its name, its role in the key (`HASH` or `RANGE`) and its type (`S`, `N`,
/// `B`), as DynamoDB's `KeySchema` and `AttributeDefinitions` give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub role: String,
    pub attribute_type: String,
}

impl Key {
    fn new(name: &str, role: &str, attribute_type: &str) -> Key {
        Key {
            name: name.into(),
            role: role.into(),
            attribute_type: attribute_type.into(),
        }
    }
}

/// A table's keys and its global secondary indexes' keys: what `create-table` and the template must
/// agree on.
#[derive(Debug, PartialEq, Eq)]
pub struct TableSchema {
    pub keys: Vec<Key>,
    pub indexes: BTreeMap<String, Vec<Key>>,
}

/// The schema `deploy/two-regions/table.yaml` creates. Panics when a key names an attribute that
/// `AttributeDefinitions` does not define, or when an attribute is defined twice.
pub fn template_schema() -> TableSchema {
    let table = template("table.yaml", TABLE_TEMPLATE);
    let table = properties(&table, "Table");
    let mut types = BTreeMap::new();
    for attribute in table["AttributeDefinitions"].as_array().expect("AttributeDefinitions") {
        let name = attribute["AttributeName"].as_str().expect("AttributeName");
        let kind = attribute["AttributeType"].as_str().expect("AttributeType");
        assert!(types.insert(name, kind).is_none(), "{name} is defined twice");
    }
    let keys = |schema: &Value| -> Vec<Key> {
        let schema = schema.as_array().expect("a KeySchema list");
        schema
            .iter()
            .map(|k| {
                let name = k["AttributeName"].as_str().expect("AttributeName");
                let kind = types
                    .get(name)
                    .unwrap_or_else(|| panic!("{name} is not in AttributeDefinitions"));
                Key::new(name, k["KeyType"].as_str().expect("KeyType"), kind)
            })
            .collect()
    };
    let indexes = table["GlobalSecondaryIndexes"].as_array().into_iter().flatten();
    TableSchema {
        keys: keys(&table["KeySchema"]),
        indexes: indexes
            .map(|i| {
                (
                    i["IndexName"].as_str().expect("IndexName").to_owned(),
                    keys(&i["KeySchema"]),
                )
            })
            .collect(),
    }
}

#[test]
fn the_table_template_declares_the_keys_and_indexes_create_table_makes() {
    let schema = template_schema();
    let ((pk, sk), indexes) = aurora_failover_bot::store::dynamodb_table::schema();
    assert_eq!(
        schema.keys,
        [Key::new(pk, "HASH", "S"), Key::new(sk, "RANGE", "S")],
        "deploy/two-regions/table.yaml's table keys differ from the store's (create-table)"
    );
    let expected: BTreeMap<String, Vec<Key>> = indexes
        .into_iter()
        .map(|(name, (pk, sk))| {
            (
                name.to_owned(),
                vec![Key::new(pk, "HASH", "S"), Key::new(sk, "RANGE", "S")],
            )
        })
        .collect();
    assert_eq!(
        schema.indexes, expected,
        "deploy/two-regions/table.yaml's indexes differ from the store's (create-table)"
    );
}

#[test]
fn the_table_is_multi_region_strongly_consistent_in_three_regions_without_ttl_or_local_indexes() {
    let table = template("table.yaml", TABLE_TEMPLATE);
    let table = properties(&table, "Table");
    assert_eq!(
        table["MultiRegionConsistency"], "STRONG",
        "the lease is only safe on MRSC"
    );
    // MRSC: exactly three Regions, three replicas or two and a witness; the stack's own Region is one
    // of the replicas (CloudFormation requires it), the other is the second bot's.
    let regions = |list: &str| -> Vec<String> {
        let list = table[list].as_array().into_iter().flatten();
        list.map(|r| r["Region"].as_str().expect("a Region").to_owned())
            .collect()
    };
    let (replicas, witnesses) = (regions("Replicas"), regions("GlobalTableWitnesses"));
    assert!(
        (replicas.len(), witnesses.len()) == (2, 1) || (replicas.len(), witnesses.len()) == (3, 0),
        "replicas {replicas:?}, witnesses {witnesses:?}"
    );
    assert_eq!(replicas, ["AWS::Region", "SecondRegion"], "one replica for each bot");
    // Not offered on MRSC tables: the bot prunes its items itself.
    assert!(table.get("TimeToLiveSpecification").is_none());
    assert!(table.get("LocalSecondaryIndexes").is_none());
    // GlobalTable's default is PROVISIONED, which would need auto scaling settings.
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
}

#[test]
fn the_slack_secret_is_replicated_to_the_second_region() {
    // Both Regions' bots read the same secret, each from its own Region's replica.
    let table = template("table.yaml", TABLE_TEMPLATE);
    let secret = properties(&table, "SlackSecret");
    assert_eq!(secret["ReplicaRegions"], json!([{"Region": "SecondRegion"}]));
    assert!(secret.get("SecretString").is_none(), "no credential in a template");
}

/// How the service template spells what `deploy/iam-policy.json` leaves as placeholders (README, "IAM
/// permissions"), longest first so that a role ARN is replaced before the Region inside it.
const PLACEHOLDERS: &[(&str, &str)] = &[
    // The probe's secret and key, read in the bot's own Region.
    (
        "secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${ProbeSecretName}",
        "secretsmanager:PROBE_SECRET_REGION:ACCOUNT:secret:PROBE_SECRET_NAME",
    ),
    (
        "kms:${AWS::Region}:${AWS::AccountId}:key/${ProbeKmsKeyId}",
        "kms:PROBE_SECRET_REGION:ACCOUNT:key/PROBE_KMS_KEY_ID",
    ),
    (
        "secretsmanager.${AWS::Region}.amazonaws.com",
        "secretsmanager.PROBE_SECRET_REGION.amazonaws.com",
    ),
    ("${AWS::Partition}", "aws"),
    ("${AWS::AccountId}", "ACCOUNT"),
    ("service-role/${Name}-${AWS::Region}", "BOT_ROLE_PATH_AND_NAME"),
    ("${Name}-${AWS::Region}", "BOT_ROLE_NAME"),
    ("${GlobalClusterId}", "GLOBAL_CLUSTER_ID"),
    ("${MemberClusterIds}", "MEMBER_CLUSTER_ID"),
    ("${HostedZoneId}", "ZONE_ID"),
    // The secret is read in the bot's own Region, from its replica there.
    ("${AWS::Region}", "SECRET_REGION"),
    ("${SlackSecretName}", "SECRET_NAME"),
];

/// Parameters given whole (`!Ref X`, read as `"X"`), and the placeholder each stands for.
const REFERENCES: &[(&str, &str)] = &[
    ("WriterRecordName", "WRITER_RECORD_NAME"),
    ("ReaderRecordName", "READER_RECORD_NAME"),
];

/// `value` with every string's CloudFormation substitutions turned into the policy's placeholders.
fn as_placeholders(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            if let Some((_, placeholder)) = REFERENCES.iter().find(|(parameter, _)| parameter == s) {
                return json!(placeholder);
            }
            let replaced = PLACEHOLDERS.iter().fold(s.clone(), |s, (from, to)| s.replace(from, to));
            assert!(
                !replaced.contains("${"),
                "a substitution the policy has no placeholder for: {s}"
            );
            json!(replaced)
        }
        Value::Array(items) => Value::Array(items.iter().map(as_placeholders).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), as_placeholders(v))).collect()),
        other => other.clone(),
    }
}

/// A statement in one comparable form: `Action` and `Resource` (a string or a list) as sorted lists,
/// each condition key's values likewise.
fn comparable(statement: &Value) -> Value {
    let list = |v: &Value| -> Value {
        let mut items: Vec<String> = match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items.iter().map(|i| i.as_str().expect("a string").to_owned()).collect(),
            other => panic!("expected a string or a list, not {other}"),
        };
        items.sort();
        json!(items)
    };
    let mut s = statement.as_object().expect("a statement").clone();
    for key in ["Action", "Resource"] {
        let value = s
            .get(key)
            .unwrap_or_else(|| panic!("a statement without {key}: {statement}"));
        s.insert(key.into(), list(value));
    }
    if let Some(Value::Object(operators)) = s.get_mut("Condition") {
        for keys in operators.values_mut() {
            for values in keys.as_object_mut().expect("condition keys").values_mut() {
                *values = list(values);
            }
        }
    }
    Value::Object(s)
}

fn actions(statement: &Value) -> Vec<String> {
    let found = comparable(statement);
    let list = found["Action"].as_array().expect("actions").iter();
    list.map(|a| a.as_str().expect("an action").to_owned()).collect()
}

/// The task role's statements in `deploy/two-regions/service.yaml`, every policy's, in order.
fn task_role_statements() -> Vec<Value> {
    let service = template("service.yaml", SERVICE_TEMPLATE);
    let policies = properties(&service, "TaskRole")["Policies"]
        .as_array()
        .expect("inline policies")
        .clone();
    policies
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().expect("statements").clone())
        .collect()
}

fn is_store(statement: &Value) -> bool {
    actions(statement).iter().all(|a| a.starts_with("dynamodb:"))
}

/// Statements by Sid, in comparable form.
fn by_sid(statements: impl IntoIterator<Item = Value>) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    for s in statements {
        let sid = s["Sid"]
            .as_str()
            .unwrap_or_else(|| panic!("a statement without a Sid: {s}"))
            .to_owned();
        assert!(found.insert(sid.clone(), comparable(&s)).is_none(), "Sid {sid} twice");
    }
    found
}

#[test]
fn the_task_role_grants_exactly_the_statements_of_the_iam_policy_file() {
    let policy: Value = serde_json::from_str(IAM_POLICY).expect("deploy/iam-policy.json is JSON");
    let file = by_sid(policy["Statement"].as_array().expect("statements").clone());
    let template = by_sid(
        task_role_statements()
            .into_iter()
            .filter(|s| !is_store(s))
            .map(|s| as_placeholders(&s)),
    );
    // Actions first, by service, for a message that names what to change.
    let services = |statements: &BTreeMap<String, Value>| -> BTreeMap<String, BTreeSet<String>> {
        let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for action in statements.values().flat_map(actions) {
            let service = action.split(':').next().expect("service:Action").to_owned();
            found.entry(service).or_default().insert(action);
        }
        found
    };
    let (in_file, in_template) = (services(&file), services(&template));
    for service in ["rds", "route53", "secretsmanager"] {
        assert!(
            in_file.contains_key(service),
            "deploy/iam-policy.json has no {service} action"
        );
    }
    assert_eq!(
        in_template, in_file,
        "deploy/two-regions/service.yaml's task role and deploy/iam-policy.json grant different actions"
    );
    for (sid, statement) in &file {
        assert_eq!(
            template.get(sid),
            Some(statement),
            "statement {sid}: deploy/two-regions/service.yaml's task role differs from deploy/iam-policy.json"
        );
    }
    assert_eq!(
        template.keys().collect::<Vec<_>>(),
        file.keys().collect::<Vec<_>>(),
        "statements not in deploy/iam-policy.json"
    );
}

#[test]
fn the_task_role_reaches_the_store_table_and_its_indexes_in_its_own_region_only() {
    let store: Vec<Value> = task_role_statements().into_iter().filter(is_store).collect();
    assert_eq!(store.len(), 1, "one statement for the store: {store:?}");
    let store = comparable(&store[0]);
    let expected: BTreeSet<&str> = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:DescribeTable",
    ]
    .into();
    let granted = actions(&store);
    assert_eq!(granted.iter().map(String::as_str).collect::<BTreeSet<_>>(), expected);
    let table = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableName}";
    assert_eq!(store["Resource"], json!([table, format!("{table}/index/*")]));
    assert_eq!(store["Effect"], "Allow");
}
