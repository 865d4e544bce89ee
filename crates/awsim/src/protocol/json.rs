//! Secrets Manager over AWS JSON 1.1: `POST /` with `X-Amz-Target: secretsmanager.{Action}` and a JSON
//! body; answers `application/x-amz-json-1.1`, errors `{"__type": code, "message": text}` (the Secrets
//! Manager API reference, "GetSecretValue"; the JSON 1.1 protocol of the Smithy specification).

use crate::model::{ApiError, World};
use serde::Deserialize;

/// The prefix of `X-Amz-Target` for Secrets Manager.
pub const TARGET_PREFIX: &str = "secretsmanager.";

/// The body of GetSecretValue.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValue {
    secret_id: Option<String>,
    version_id: Option<String>,
    version_stage: Option<String>,
}

/// The request's parameters that name what it acts on, for the call log (`SecretId`).
pub fn params_for_log(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    serde_json::from_slice::<GetSecretValue>(body)
        .ok()
        .and_then(|b| b.secret_id)
        .map(|id| [("SecretId".to_owned(), id)].into_iter().collect())
        .unwrap_or_default()
}

/// Serves one Secrets Manager action of `region`: the answer's JSON body, or the error to send.
pub fn handle(world: &World, region: &str, action: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    match action {
        "GetSecretValue" => {
            let b: GetSecretValue = serde_json::from_slice(body).map_err(|e| {
                ApiError::new(
                    400,
                    "SerializationException",
                    format!("The request body is not valid: {e}"),
                )
            })?;
            let Some(id) = b.secret_id.filter(|id| !id.is_empty()) else {
                return Err(ApiError::new(
                    400,
                    "ValidationException",
                    "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null",
                ));
            };
            let s = world
                .secrets
                .get_value(region, &id, b.version_id.as_deref(), b.version_stage.as_deref())?;
            let created = s.created.as_millisecond() as f64 / 1000.0;
            let answer = serde_json::json!({
                "ARN": s.arn,
                "Name": s.name,
                "VersionId": s.version_id,
                "SecretString": s.value,
                "VersionStages": [crate::model::secrets::AWSCURRENT],
                "CreatedDate": created,
            });
            Ok(serde_json::to_vec(&answer).expect("a JSON value serializes"))
        }
        other => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("The emulator does not serve secretsmanager.{other}"),
        )),
    }
}

/// The error body of AWS JSON 1.1.
pub fn error_body(e: &ApiError) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "__type": e.code, "message": e.message })).expect("a JSON value serializes")
}
