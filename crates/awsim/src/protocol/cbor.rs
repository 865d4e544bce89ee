//! CloudWatch's wire protocol in the current AWS SDKs: Smithy RPC v2 CBOR. `POST
//! /service/GraniteServiceVersion20100801/operation/{Operation}` with a CBOR map body, answered with a
//! CBOR map; timestamps are CBOR tag 1 around epoch seconds; errors carry `__type` and `message`, and
//! the `x-amzn-query-error` header with the query-protocol code the SDK matches on.
//!
//! The emulator serves the Aurora Global Database lag metrics (`AuroraGlobalDBRPOLag`,
//! `AuroraGlobalDBReplicationLag`, in `AWS/RDS`), published as AWS publishes them: by each secondary
//! cluster, in its own Region, with the dimensions `DBClusterIdentifier` (the secondary) and
//! `SourceRegion` (the primary's Region).

use crate::model::{ApiError, World};
use ciborium::Value;
use tokio::time::Instant;

pub const PATH_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";

/// The metrics the emulator publishes.
pub const LAG_METRICS: &[&str] = &["AuroraGlobalDBRPOLag", "AuroraGlobalDBReplicationLag"];

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

fn text<'a>(map: &'a Value, key: &str) -> Option<&'a str> {
    get(map, key)?.as_text()
}

fn timestamp(v: &Value) -> Option<f64> {
    match v {
        Value::Tag(1, inner) => match inner.as_ref() {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => i128::from(*i).to_string().parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn integer(v: &Value) -> Option<i64> {
    v.as_integer().and_then(|i| i64::try_from(i).ok())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidParameterValue", message)
}

fn entry(key: &str, value: Value) -> (Value, Value) {
    (Value::Text(key.to_owned()), value)
}

/// Encodes a value as CBOR bytes.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("writing CBOR to memory cannot fail");
    out
}

/// The CBOR body of an error.
pub fn error_body(e: &ApiError) -> Vec<u8> {
    encode(&Value::Map(vec![
        entry("__type", Value::Text(e.code.clone())),
        entry("message", Value::Text(e.message.clone())),
    ]))
}

/// Runs one CloudWatch operation and encodes its answer.
pub fn handle(world: &World, region: &str, operation: &str, body: &[u8], now: Instant) -> Result<Vec<u8>, ApiError> {
    let request: Value = if body.is_empty() {
        Value::Map(vec![])
    } else {
        ciborium::from_reader(body)
            .map_err(|e| ApiError::new(400, "SerializationException", format!("bad CBOR body: {e}")))?
    };
    match operation {
        "GetMetricData" => get_metric_data(world, region, &request, now),
        other => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("The emulator does not serve CloudWatch {other}"),
        )),
    }
}

/// The lag (ms) a secondary cluster publishes under these dimensions, if it publishes this metric.
fn lag_series(world: &World, region: &str, namespace: &str, metric: &str, dims: &[(String, String)]) -> Option<f64> {
    if namespace != "AWS/RDS" || !LAG_METRICS.contains(&metric) {
        return None;
    }
    let cluster = dims.iter().find(|(n, _)| n == "DBClusterIdentifier").map(|(_, v)| v)?;
    // CloudWatch matches the exact dimension set: both must be given, and nothing else.
    let source = dims.iter().find(|(n, _)| n == "SourceRegion").map(|(_, v)| v)?;
    if dims
        .iter()
        .any(|(n, _)| n != "DBClusterIdentifier" && n != "SourceRegion")
    {
        return None;
    }
    let c = world.rds.find_cluster(region, cluster)?;
    let g = world.rds.globals.get(c.global.as_ref()?)?;
    let writer = g.writer.as_ref()?;
    if writer == &c.key || source != &writer.region {
        return None;
    }
    Some(c.lag.as_millis() as f64)
}

fn get_metric_data(world: &World, region: &str, req: &Value, now: Instant) -> Result<Vec<u8>, ApiError> {
    let queries = get(req, "MetricDataQueries")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::missing_parameter("MetricDataQueries"))?;
    let start = get(req, "StartTime")
        .and_then(timestamp)
        .ok_or_else(|| ApiError::missing_parameter("StartTime"))?;
    let end = get(req, "EndTime")
        .and_then(timestamp)
        .ok_or_else(|| ApiError::missing_parameter("EndTime"))?;
    if end <= start {
        return Err(invalid("The parameter EndTime must be greater than StartTime."));
    }
    let now_secs = world.clock.wall(now).as_millisecond() as f64 / 1000.0;
    let mut results = Vec::new();
    for q in queries {
        let id = text(q, "Id").ok_or_else(|| ApiError::missing_parameter("MetricDataQueries.member.Id"))?;
        if get(q, "Expression").is_some() {
            return Err(invalid("The emulator does not evaluate metric math expressions."));
        }
        let stat = get(q, "MetricStat").ok_or_else(|| invalid(format!("Query {id} needs a MetricStat.")))?;
        let metric = get(stat, "Metric").ok_or_else(|| invalid(format!("Query {id} needs a Metric.")))?;
        let period = get(stat, "Period").and_then(integer).filter(|p| *p > 0).unwrap_or(60);
        let namespace = text(metric, "Namespace").unwrap_or_default();
        let name = text(metric, "MetricName").unwrap_or_default();
        let dims: Vec<(String, String)> = get(metric, "Dimensions")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|d| Some((text(d, "Name")?.to_owned(), text(d, "Value")?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        // One datapoint per period from the start up to now (at most the latest ten), newest first, as
        // CloudWatch returns them by default.
        let mut timestamps = Vec::new();
        let mut values = Vec::new();
        if let Some(value) = lag_series(world, region, namespace, name, &dims) {
            let p = period as f64;
            let last = (end.min(now_secs) / p).floor() * p;
            let mut t = last;
            while t >= start && timestamps.len() < 10 {
                timestamps.push(Value::Tag(1, Box::new(Value::Float(t))));
                values.push(Value::Float(value));
                t -= p;
            }
        }
        results.push(Value::Map(vec![
            entry("Id", Value::Text(id.to_owned())),
            entry("Label", Value::Text(text(q, "Label").unwrap_or(name).to_owned())),
            entry("Timestamps", Value::Array(timestamps)),
            entry("Values", Value::Array(values)),
            entry("StatusCode", Value::Text("Complete".into())),
        ]));
    }
    Ok(encode(&Value::Map(vec![
        entry("MetricDataResults", Value::Array(results)),
        entry("Messages", Value::Array(vec![])),
    ])))
}
