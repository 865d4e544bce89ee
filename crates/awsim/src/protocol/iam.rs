//! STS and IAM over the query protocol (form-encoded POST with `Action` and `Version`; XML answers in the
//! `https://sts.amazonaws.com/doc/2011-06-15/` and `https://iam.amazonaws.com/doc/2010-05-08/`
//! namespaces, errors in the standard `ErrorResponse` envelope): `GetCallerIdentity`, `GetRole`,
//! `SimulatePrincipalPolicy`.

use super::query::{Params, timestamp};
use super::xml::XmlWriter;
use crate::model::iam::{ContextEntry, Evaluation, Simulation};
use crate::model::{ApiError, World};

pub const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const IAM_XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// The trust policy every emulated role shows (URL-encoded, as IAM returns policy documents).
const TRUST_POLICY: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ecs-tasks.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";

/// Runs one STS action.
pub fn handle_sts(world: &World, action: &str, request_id: &str) -> Result<String, ApiError> {
    match action {
        "GetCallerIdentity" => {
            let (account, arn, user_id) = world.iam.caller_identity();
            let mut w = XmlWriter::with_root("GetCallerIdentityResponse", STS_XMLNS);
            w.open("GetCallerIdentityResult");
            w.text("Arn", arn);
            w.text("UserId", user_id);
            w.text("Account", account);
            w.close();
            metadata(&mut w, request_id);
            Ok(w.finish())
        }
        other => Err(invalid_action(other)),
    }
}

/// Runs one IAM action.
pub fn handle_iam(world: &World, action: &str, p: &Params, request_id: &str) -> Result<String, ApiError> {
    match action {
        "GetRole" => {
            let name = required(p, "RoleName")?;
            let role = world.iam.get_role(name)?;
            let mut w = XmlWriter::with_root("GetRoleResponse", IAM_XMLNS);
            w.open("GetRoleResult").open("Role");
            w.text("Path", &role.path);
            w.text("RoleName", &role.name);
            w.text("RoleId", &role.id);
            w.text("Arn", &role.arn);
            w.text("CreateDate", timestamp(role.created));
            w.text("AssumeRolePolicyDocument", TRUST_POLICY);
            w.text("MaxSessionDuration", 3600);
            w.open("RoleLastUsed").close();
            w.close().close();
            metadata(&mut w, request_id);
            Ok(w.finish())
        }
        "SimulatePrincipalPolicy" => simulate_principal_policy(world, p, request_id),
        other => Err(invalid_action(other)),
    }
}

fn simulate_principal_policy(world: &World, p: &Params, request_id: &str) -> Result<String, ApiError> {
    let policy_source_arn = required(p, "PolicySourceArn")?.to_owned();
    let actions = p.list("ActionNames", "member");
    if actions.is_empty() {
        return Err(validation(
            "Value null at 'actionNames' failed to satisfy constraint: Member must not be null",
        ));
    }
    let context = (1..)
        .map_while(|n| {
            let prefix = format!("ContextEntries.member.{n}");
            let key = p.0.get(&format!("{prefix}.ContextKeyName"))?.clone();
            Some(ContextEntry {
                key,
                values: p.list(&format!("{prefix}.ContextKeyValues"), "member"),
                value_type: p.get(&format!("{prefix}.ContextKeyType")).map(str::to_owned),
            })
        })
        .collect();
    let max_items = match p.get("MaxItems") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                validation(&format!(
                    "Value '{v}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
                ))
            })?,
    };
    let start = match p.get("Marker") {
        None => 0,
        Some(m) => m
            .strip_prefix("awsim-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::new(400, "InvalidInput", format!("Invalid Marker {m}")))?,
    };
    let simulation = Simulation {
        policy_source_arn,
        actions,
        resources: p.list("ResourceArns", "member"),
        context,
    };
    let results = world.iam.simulate(&simulation)?;
    let total = results.len();
    let page: Vec<Evaluation> = results.into_iter().skip(start).take(max_items).collect();
    let marker = (start + max_items < total).then(|| format!("awsim-{}", start + max_items));
    let with_resources = !simulation.resources.is_empty();

    let mut w = XmlWriter::with_root("SimulatePrincipalPolicyResponse", IAM_XMLNS);
    w.open("SimulatePrincipalPolicyResult");
    w.open("EvaluationResults");
    for e in &page {
        w.open("member");
        w.text("EvalActionName", &e.action);
        w.text("EvalResourceName", &e.resource);
        w.text("EvalDecision", e.decision.as_str());
        write_statements(&mut w, e);
        w.text_list("MissingContextValues", "member", &e.missing_context);
        if let Some(allowed) = e.allowed_by_organizations {
            w.open("OrganizationsDecisionDetail");
            w.text("AllowedByOrganizations", allowed);
            w.close();
        }
        write_boundary(&mut w, e);
        if with_resources {
            // Present and empty for a simulation within one account that names its resources.
            w.open("EvalDecisionDetails").close();
            w.open("ResourceSpecificResults").open("member");
            w.text("EvalResourceName", &e.resource);
            w.text("EvalResourceDecision", e.decision.as_str());
            write_statements(&mut w, e);
            w.text_list("MissingContextValues", "member", &e.missing_context);
            w.open("EvalDecisionDetails").close();
            write_boundary(&mut w, e);
            w.close().close();
        }
        w.close();
    }
    w.close();
    w.text("IsTruncated", marker.is_some());
    w.opt_text("Marker", marker);
    w.close();
    metadata(&mut w, request_id);
    Ok(w.finish())
}

fn write_statements(w: &mut XmlWriter, e: &Evaluation) {
    w.open("MatchedStatements");
    for id in &e.matched_statements {
        w.open("member");
        w.text("SourcePolicyId", id);
        w.text("SourcePolicyType", e.source_type);
        w.close();
    }
    w.close();
}

fn write_boundary(w: &mut XmlWriter, e: &Evaluation) {
    if let Some(allowed) = e.allowed_by_permissions_boundary {
        w.open("PermissionsBoundaryDecisionDetail");
        w.text("AllowedByPermissionsBoundary", allowed);
        w.close();
    }
}

fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    p.get(name).ok_or_else(|| {
        let field = format!("{}{}", name[..1].to_ascii_lowercase(), &name[1..]);
        validation(&format!(
            "Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn validation(detail: &str) -> ApiError {
    ApiError::new(400, "ValidationError", format!("1 validation error detected: {detail}"))
}

fn invalid_action(action: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidAction",
        format!("Could not find operation {action} for version the emulator serves"),
    )
}

fn metadata(w: &mut XmlWriter, request_id: &str) {
    w.open("ResponseMetadata");
    w.text("RequestId", request_id);
    w.close();
}

/// The XML body of an STS or IAM error.
pub fn error_body(e: &ApiError, request_id: &str, xmlns: &str) -> String {
    let mut w = XmlWriter::with_root("ErrorResponse", xmlns);
    w.open("Error");
    w.text("Type", e.fault_type());
    w.text("Code", &e.code);
    w.text("Message", &e.message);
    w.close();
    w.text("RequestId", request_id);
    w.finish()
}
