//! The `Permissions` port over IAM's policy simulator (`iam:SimulatePrincipalPolicy`), for the principal
//! the bot runs as (`sts:GetCallerIdentity`).
//!
//! The simulator wants the principal's IAM ARN; an assumed role's session ARN
//! (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`) does not carry the role's path, so the role ARN
//! is first tried without one (`arn:aws:iam::ACCOUNT:role/NAME`, right for most roles) and, when IAM
//! answers that no such role exists, looked up with `iam:GetRole`. The resolved ARN is kept for the
//! process's life.
//!
//! Every failure to get an answer is returned as text for people: the check it feeds is a warning,
//! never a refusal, because a permission check that cannot run must not block a failover.

use super::classify;
use crate::ports::{AwsErrorKind, Evaluation, PermissionQuery, Permissions, Verdict};
use async_trait::async_trait;
use aws_sdk_iam::types::{
    ContextEntry, ContextKeyTypeEnum, EvaluationResult, PolicyEvaluationDecisionType, ResourceSpecificResult,
};
use tokio::sync::Mutex;

pub struct IamPermissions {
    sts: aws_sdk_sts::Client,
    iam: aws_sdk_iam::Client,
    /// The principal's IAM ARN, once resolved. An async mutex: the first checks resolve it once while
    /// others wait, rather than each calling STS.
    principal: Mutex<Option<String>>,
}

impl IamPermissions {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        IamPermissions {
            sts: aws_sdk_sts::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            principal: Mutex::new(None),
        }
    }
}

/// What the caller's ARN is to the simulator: the IAM ARN to simulate (a role ARN without its path for
/// an assumed role), or why it cannot be simulated.
pub fn principal_of(caller_arn: &str) -> Result<Principal, String> {
    // arn:PARTITION:SERVICE::ACCOUNT:RESOURCE
    let parts: Vec<&str> = caller_arn.splitn(6, ':').collect();
    let [_, partition, service, _, account, resource] = parts.as_slice() else {
        return Err(format!("the bot's identity {caller_arn} is not an ARN"));
    };
    match (*service, resource.split('/').collect::<Vec<_>>().as_slice()) {
        ("sts", ["assumed-role", role, ..]) => Ok(Principal::Role {
            name: (*role).to_owned(),
            arn: format!("arn:{partition}:iam::{account}:role/{role}"),
        }),
        ("iam", ["user", ..]) | ("iam", ["role", ..]) => Ok(Principal::Exact(caller_arn.to_owned())),
        ("iam", ["root"]) => Err(
            "the bot runs as the account's root user, which the policy simulator cannot check (and which a bot should not use)"
                .to_owned(),
        ),
        ("sts", ["federated-user", ..]) => {
            Err("the bot runs as a federated user, which the policy simulator cannot check".to_owned())
        }
        _ => Err(format!("the policy simulator cannot check the bot's identity {caller_arn}")),
    }
}

/// The principal to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An IAM user or role ARN, as given.
    Exact(String),
    /// An assumed role: its name, and its ARN assuming the path `/`.
    Role { name: String, arn: String },
}

/// A verdict from one of the simulator's evaluation results.
fn verdict(r: &EvaluationResult) -> Verdict {
    match r.eval_decision() {
        PolicyEvaluationDecisionType::Allowed => Verdict::Allowed,
        PolicyEvaluationDecisionType::ExplicitDeny => Verdict::Denied { explicit: true },
        _ => {
            if r.organizations_decision_detail()
                .is_some_and(|d| !d.allowed_by_organizations())
            {
                Verdict::Undecided(
                    "an organization's service control policy may deny it, and the simulator cannot evaluate SCPs fully"
                        .to_owned(),
                )
            } else if r
                .permissions_boundary_decision_detail()
                .is_some_and(|d| !d.allowed_by_permissions_boundary())
            {
                Verdict::Undecided("the principal's permissions boundary may deny it".to_owned())
            } else if !r.missing_context_values().is_empty() {
                missing_context(r.missing_context_values())
            } else {
                Verdict::Denied { explicit: false }
            }
        }
    }
}

/// The ARN of the identity `config`'s credentials act as (`sts:GetCallerIdentity`), for the audit of
/// a break-glass run. The error says why it could not be read, without any credential.
pub async fn caller_arn(config: &aws_config::SdkConfig) -> Result<String, String> {
    let caller = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify(&e, "sts:GetCallerIdentity").to_string())?;
    caller
        .arn()
        .map(str::to_owned)
        .ok_or_else(|| "sts:GetCallerIdentity gave no ARN".to_owned())
}

impl IamPermissions {
    /// The principal's IAM ARN, resolved once.
    async fn principal(&self) -> Result<Principal, String> {
        let mut known = self.principal.lock().await;
        if let Some(arn) = known.as_ref() {
            return Ok(Principal::Exact(arn.clone()));
        }
        let caller = self.sts.get_caller_identity().send().await.map_err(|e| {
            format!(
                "the bot's identity could not be read: {}",
                classify(&e, "sts:GetCallerIdentity")
            )
        })?;
        let arn = caller.arn().ok_or("sts:GetCallerIdentity gave no ARN")?.to_owned();
        let principal = principal_of(&arn)?;
        if let Principal::Exact(arn) = &principal {
            *known = Some(arn.clone());
        }
        Ok(principal)
    }

    /// One query, every page of it, for `principal`.
    async fn simulate(&self, principal: &str, q: &PermissionQuery) -> Result<Vec<Evaluation>, SimulateError> {
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            let page = self.simulation(principal, q, marker.take()).send().await?;
            out.extend(page.evaluation_results().iter().flat_map(evaluations));
            match page.marker().filter(|_| page.is_truncated()) {
                Some(m) => marker = Some(m.to_owned()),
                None => return Ok(out),
            }
        }
    }

    /// The simulator call for the page of `q` that starts at `marker`.
    fn simulation(
        &self,
        principal: &str,
        q: &PermissionQuery,
        marker: Option<String>,
    ) -> aws_sdk_iam::operation::simulate_principal_policy::builders::SimulatePrincipalPolicyFluentBuilder {
        let call = self
            .iam
            .simulate_principal_policy()
            .policy_source_arn(principal)
            .set_action_names(Some(q.actions.clone()))
            .set_resource_arns(Some(q.resources.clone()))
            .set_marker(marker);
        q.context.iter().fold(call, |call, (key, values)| {
            call.context_entries(
                ContextEntry::builder()
                    .context_key_name(key)
                    .set_context_key_values(Some(values.clone()))
                    .context_key_type(ContextKeyTypeEnum::StringList)
                    .build(),
            )
        })
    }
}

type SimulateError = aws_sdk_iam::error::SdkError<
    aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyError,
    aws_sdk_iam::config::http::HttpResponse,
>;

/// The evaluations in one of the simulator's results: with several resources the simulator may answer
/// one result per action with a list of per-resource results.
fn evaluations(r: &EvaluationResult) -> Vec<Evaluation> {
    let verdict = verdict(r);
    if r.resource_specific_results().is_empty() {
        return vec![Evaluation {
            action: r.eval_action_name().to_owned(),
            resource: r.eval_resource_name().unwrap_or("*").to_owned(),
            verdict,
        }];
    }
    r.resource_specific_results()
        .iter()
        .map(|rs| Evaluation {
            action: r.eval_action_name().to_owned(),
            resource: rs.eval_resource_name().to_owned(),
            verdict: resource_verdict(rs, &verdict),
        })
        .collect()
}

/// The verdict on one resource, given the verdict of the result it belongs to (`overall`).
fn resource_verdict(rs: &ResourceSpecificResult, overall: &Verdict) -> Verdict {
    match rs.eval_resource_decision() {
        PolicyEvaluationDecisionType::Allowed => Verdict::Allowed,
        PolicyEvaluationDecisionType::ExplicitDeny => Verdict::Denied { explicit: true },
        _ if !rs.missing_context_values().is_empty() => missing_context(rs.missing_context_values()),
        _ => match overall {
            Verdict::Undecided(why) => Verdict::Undecided(why.clone()),
            _ => Verdict::Denied { explicit: false },
        },
    }
}

/// The simulator could not decide without the condition keys `missing`.
fn missing_context(missing: &[String]) -> Verdict {
    Verdict::Undecided(format!(
        "it depends on condition keys the simulator was not given ({})",
        missing.join(", ")
    ))
}

#[async_trait]
impl Permissions for IamPermissions {
    async fn evaluate(&self, queries: &[PermissionQuery]) -> Result<Vec<Evaluation>, String> {
        let mut principal = self.principal().await?;
        let mut out = Vec::new();
        for q in queries {
            loop {
                let arn = match &principal {
                    Principal::Exact(a) | Principal::Role { arn: a, .. } => a.clone(),
                };
                match self.simulate(&arn, q).await {
                    Ok(found) => {
                        if let Principal::Role { .. } = principal {
                            // The path-less ARN was right: keep it.
                            *self.principal.lock().await = Some(arn.clone());
                            principal = Principal::Exact(arn);
                        }
                        out.extend(found);
                        break;
                    }
                    Err(e) => {
                        let err = classify(&e, "iam:SimulatePrincipalPolicy");
                        match (&principal, err.kind) {
                            // The role may have a path: ask IAM for its real ARN, once. (IAM checks the
                            // permission on the ARN it is given before looking the role up, so a policy
                            // scoped to the full ARN answers the path-less one AccessDenied, not NotFound.)
                            (Principal::Role { name, .. }, AwsErrorKind::NotFound | AwsErrorKind::AccessDenied) => {
                                let denied = err.kind == AwsErrorKind::AccessDenied;
                                let role = self.iam.get_role().role_name(name).send().await.map_err(|e| {
                                    if denied {
                                        format!(
                                            "{}. Allow iam:SimulatePrincipalPolicy (and iam:GetRole) on the bot's own \
                                             role to have its permissions checked",
                                            err.message
                                        )
                                    } else {
                                        format!(
                                            "the role's full ARN could not be found ({}); the simulator needs it",
                                            classify(&e, "iam:GetRole")
                                        )
                                    }
                                })?;
                                let arn = role
                                    .role()
                                    .map(|r| r.arn().to_owned())
                                    .ok_or("iam:GetRole gave no role")?;
                                *self.principal.lock().await = Some(arn.clone());
                                principal = Principal::Exact(arn);
                            }
                            (_, AwsErrorKind::AccessDenied) => {
                                return Err(format!(
                                    "{}. Allow iam:SimulatePrincipalPolicy on the bot's own role to have its permissions checked",
                                    err.message
                                ));
                            }
                            _ => return Err(format!("the policy simulator could not answer: {}", err.message)),
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_principal_to_simulate_comes_from_the_caller_arn() {
        assert_eq!(
            principal_of("arn:aws:sts::123456789012:assumed-role/aurora-failover-bot/i-0abc"),
            Ok(Principal::Role {
                name: "aurora-failover-bot".into(),
                arn: "arn:aws:iam::123456789012:role/aurora-failover-bot".into()
            })
        );
        assert_eq!(
            principal_of("arn:aws-us-gov:iam::123456789012:user/ops/bot"),
            Ok(Principal::Exact("arn:aws-us-gov:iam::123456789012:user/ops/bot".into()))
        );
        assert!(
            principal_of("arn:aws:iam::123456789012:root")
                .unwrap_err()
                .contains("root user")
        );
        assert!(principal_of("not an arn").is_err());
    }
}
