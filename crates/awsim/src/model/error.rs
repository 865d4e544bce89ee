//! An AWS API error as the wire carries it: HTTP status, error code, message.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// `Sender` for 4xx, `Receiver` for 5xx, as the `Type` element of AWS XML errors says.
    pub fn fault_type(&self) -> &'static str {
        if self.status >= 500 { "Receiver" } else { "Sender" }
    }

    pub fn db_cluster_not_found(id: &str) -> Self {
        ApiError::new(404, "DBClusterNotFoundFault", format!("DBCluster {id} not found."))
    }

    pub fn global_cluster_not_found(id: &str) -> Self {
        ApiError::new(
            404,
            "GlobalClusterNotFoundFault",
            format!("Global cluster {id} not found"),
        )
    }

    pub fn invalid_global_cluster_state(message: impl Into<String>) -> Self {
        ApiError::new(400, "InvalidGlobalClusterStateFault", message)
    }

    pub fn invalid_db_cluster_state(message: impl Into<String>) -> Self {
        ApiError::new(400, "InvalidDBClusterStateFault", message)
    }

    pub fn invalid_parameter_value(message: impl Into<String>) -> Self {
        ApiError::new(400, "InvalidParameterValue", message)
    }

    pub fn invalid_parameter_combination(message: impl Into<String>) -> Self {
        ApiError::new(400, "InvalidParameterCombination", message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        ApiError::new(
            400,
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }
}
