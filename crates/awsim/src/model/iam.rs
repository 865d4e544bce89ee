//! Who the caller is (STS `GetCallerIdentity`) and what IAM's policy simulator says it may do
//! (`GetRole`, `SimulatePrincipalPolicy`). There are no policies: everything is allowed unless a rule
//! says otherwise, and a rule says exactly how the simulator answers for an action on a resource
//! (denied explicitly or implicitly, by an SCP, by a permissions boundary, or for want of a context
//! value). The simulator itself can be made to refuse the caller (`AccessDenied`).
//!
//! Invariants: role and user names are unique per kind; a principal's ARN is
//! `arn:aws:iam::{account}:{role|user}{path}{name}`.

use super::error::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The role the emulated bot runs as, unless a scenario says otherwise.
pub const DEFAULT_ROLE: &str = "aurora-failover-bot";
/// The session name of the default caller.
pub const DEFAULT_SESSION: &str = "awsim-session";
/// The context key a `missing_context` rule names when it names none.
pub const DEFAULT_CONTEXT_KEY: &str = "aws:RequestedRegion";

/// The default caller of an account: the bot's role, assumed.
pub fn default_caller(account: &str) -> String {
    format!("arn:aws:sts::{account}:assumed-role/{DEFAULT_ROLE}/{DEFAULT_SESSION}")
}

/// An IAM role or user: a name and a path (`/` or `/a/b/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamPrincipal {
    pub name: String,
    #[serde(default = "root_path")]
    pub path: String,
}

pub(crate) fn root_path() -> String {
    "/".to_owned()
}

/// How the policy simulator answers for the actions and resources a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleEffect {
    /// `implicitDeny`: no policy allows it.
    ImplicitDeny,
    /// `explicitDeny`, with the denying statement in `MatchedStatements`; wins over every other rule.
    ExplicitDeny,
    /// `implicitDeny` with `OrganizationsDecisionDetail.AllowedByOrganizations = false`.
    ScpDeny,
    /// `implicitDeny` with `PermissionsBoundaryDecisionDetail.AllowedByPermissionsBoundary = false`.
    BoundaryDeny,
    /// `implicitDeny` with the rule's context key in `MissingContextValues`, unless the request gives
    /// that key in `ContextEntries` (then the rule does not apply).
    MissingContext,
}

/// One answer of the policy simulator: for the actions matching `action` on the resources matching
/// `resource` (globs with `*` and `?`; actions case-insensitive, as IAM compares them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamRule {
    /// E.g. `route53:ChangeResourceRecordSets`, `rds:*`.
    pub action: String,
    /// E.g. `arn:aws:route53:::hostedzone/Z0123456789`; every resource by default.
    #[serde(default = "any_resource")]
    pub resource: String,
    pub effect: RuleEffect,
    /// `missing_context` only: the context key the decision lacks (`aws:RequestedRegion` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_key: Option<String>,
}

fn any_resource() -> String {
    "*".to_owned()
}

impl IamRule {
    /// A rule for `action` on every resource.
    pub fn new(action: &str, effect: RuleEffect) -> IamRule {
        IamRule {
            action: action.to_owned(),
            resource: any_resource(),
            effect,
            context_key: None,
        }
    }

    /// This rule, for the resources matching `resource` only.
    pub fn on(self, resource: &str) -> IamRule {
        IamRule {
            resource: resource.to_owned(),
            ..self
        }
    }

    /// Why the rule is malformed, if it is.
    pub fn check(&self) -> Result<(), String> {
        let well_formed_action = self
            .action
            .split_once(':')
            .is_some_and(|(service, name)| !service.is_empty() && !name.is_empty());
        if !well_formed_action {
            return Err(format!(
                "action {:?} is not service:Action (e.g. route53:ChangeResourceRecordSets)",
                self.action
            ));
        }
        if self.resource.is_empty() {
            return Err("resource must not be empty (leave it out for every resource)".into());
        }
        if self.context_key.is_some() && self.effect != RuleEffect::MissingContext {
            return Err("context_key is for missing_context rules".into());
        }
        Ok(())
    }

    fn matches(&self, action: &str, resource: &str) -> bool {
        glob(&self.action.to_ascii_lowercase(), &action.to_ascii_lowercase()) && glob(&self.resource, resource)
    }
}

/// Whether the policy simulator answers the caller at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimulatorMode {
    #[default]
    Available,
    /// `SimulatePrincipalPolicy` answers 403 `AccessDenied`: the caller may not use the simulator.
    AccessDenied,
}

/// IAM glob: `*` any run of characters, `?` any one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// IAM names: 1 to 64 letters, digits or `+=,.@_-`.
pub fn is_iam_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// IAM paths: `/`, or `/` + segments + `/`, at most 512 characters of printable ASCII.
pub fn is_iam_path(s: &str) -> bool {
    s.len() <= 512 && s.starts_with('/') && s.ends_with('/') && s.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// Why a caller ARN cannot be the caller, if it cannot: it must be an assumed role
/// (`arn:aws:sts::{account}:assumed-role/{role}/{session}`), an IAM user or the account's root.
pub fn check_caller(arn: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{arn:?} is not a caller ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION, arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:root)"
        )
    };
    let (service, rest) = if let Some(r) = arn.strip_prefix("arn:aws:sts::") {
        ("sts", r)
    } else if let Some(r) = arn.strip_prefix("arn:aws:iam::") {
        ("iam", r)
    } else {
        return Err(bad());
    };
    let (account, resource) = rest.split_once(':').ok_or_else(bad)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ok = match service {
        "sts" => resource
            .strip_prefix("assumed-role/")
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(role, session)| is_iam_name(role) && !session.is_empty() && !session.contains('/')),
        _ => resource == "root" || resource.strip_prefix("user/").is_some_and(|u| !u.is_empty()),
    };
    if ok { Ok(()) } else { Err(bad()) }
}

/// A role or user as IAM holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    pub name: String,
    pub path: String,
    /// `AROA…` for a role, `AIDA…` for a user.
    pub id: String,
    pub arn: String,
    pub created: jiff::Timestamp,
}

/// One `ContextEntries` member of a simulation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub key: String,
    pub values: Vec<String>,
    pub value_type: Option<String>,
}

/// What a `SimulatePrincipalPolicy` request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    pub policy_source_arn: String,
    pub actions: Vec<String>,
    /// Empty: every resource (`*`).
    pub resources: Vec<String>,
    pub context: Vec<ContextEntry>,
}

/// `allowed`, `explicitDeny` or `implicitDeny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ExplicitDeny => "explicitDeny",
            Decision::ImplicitDeny => "implicitDeny",
        }
    }
}

/// The simulator's answer for one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub action: String,
    pub resource: String,
    pub decision: Decision,
    /// `SourcePolicyId` of the statements that decided (the allowing policy, or the denying rule).
    pub matched_statements: Vec<String>,
    /// `SourcePolicyType` of those statements: `role` or `user`.
    pub source_type: &'static str,
    pub missing_context: Vec<String>,
    /// `Some(false)`: denied by an SCP.
    pub allowed_by_organizations: Option<bool>,
    /// `Some(false)`: denied by a permissions boundary.
    pub allowed_by_permissions_boundary: Option<bool>,
}

/// The IAM and STS state, for inspection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IamView {
    pub caller_arn: String,
    pub roles: Vec<Principal>,
    pub users: Vec<Principal>,
    pub rules: Vec<IamRule>,
    pub simulator: SimulatorMode,
}

/// The IAM and STS state of the account.
#[derive(Debug, Clone)]
pub struct Iam {
    pub account: String,
    pub caller_arn: String,
    /// By name.
    pub roles: BTreeMap<String, Principal>,
    /// By name.
    pub users: BTreeMap<String, Principal>,
    /// In the order given; the first matching rule decides, except that an explicit deny always wins.
    pub rules: Vec<IamRule>,
    pub simulator: SimulatorMode,
    created: jiff::Timestamp,
}

/// A stable IAM unique id for a principal: a prefix and 17 characters derived from its ARN.
fn unique_id(prefix: &str, arn: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // FNV-1a, twice with different seeds, for 17 base-32 characters.
    let hash = |seed: u64| {
        arn.bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    };
    let (a, b) = (hash(0xcbf2_9ce4_8422_2325), hash(0x8422_2325_cbf2_9ce4));
    let mut id = prefix.to_owned();
    for i in 0..17 {
        let bits = if i < 12 { a >> (i * 5) } else { b >> ((i - 12) * 5) };
        id.push(char::from(ALPHABET[(bits & 31) as usize]));
    }
    id
}

impl Iam {
    pub fn new(account: &str, created: jiff::Timestamp) -> Iam {
        Iam {
            account: account.to_owned(),
            caller_arn: default_caller(account),
            roles: BTreeMap::new(),
            users: BTreeMap::new(),
            rules: Vec::new(),
            simulator: SimulatorMode::Available,
            created,
        }
    }

    /// Takes the caller, principals, rules and simulator mode of a scenario's `[iam]` section (validated).
    pub fn load(&mut self, spec: &crate::scenario::IamSpec) {
        if let Some(arn) = &spec.caller_arn {
            self.caller_arn = arn.clone();
        }
        for r in &spec.roles {
            self.put_role(&r.name, &r.path);
        }
        for u in &spec.users {
            self.put_user(&u.name, &u.path);
        }
        self.rules = spec.rules.clone();
        self.simulator = spec.simulator;
    }

    fn principal(&self, kind: &str, name: &str, path: &str) -> Principal {
        let arn = format!("arn:aws:iam::{}:{kind}{path}{name}", self.account);
        Principal {
            name: name.to_owned(),
            path: path.to_owned(),
            id: unique_id(if kind == "role" { "AROA" } else { "AIDA" }, &arn),
            arn,
            created: self.created,
        }
    }

    /// Adds a role, or moves an existing one of that name to `path`.
    pub fn put_role(&mut self, name: &str, path: &str) {
        let role = self.principal("role", name, path);
        self.roles.insert(name.to_owned(), role);
    }

    /// Adds a user, or moves an existing one of that name to `path`.
    pub fn put_user(&mut self, name: &str, path: &str) {
        let user = self.principal("user", name, path);
        self.users.insert(name.to_owned(), user);
    }

    pub fn view(&self) -> IamView {
        IamView {
            caller_arn: self.caller_arn.clone(),
            roles: self.roles.values().cloned().collect(),
            users: self.users.values().cloned().collect(),
            rules: self.rules.clone(),
            simulator: self.simulator,
        }
    }

    /// GetCallerIdentity: account, ARN and user id of the caller.
    pub fn caller_identity(&self) -> (String, String, String) {
        let arn = &self.caller_arn;
        let account = arn.split(':').nth(4).unwrap_or(&self.account).to_owned();
        let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
        let user_id =
            if let Some((role, session)) = resource.strip_prefix("assumed-role/").and_then(|r| r.split_once('/')) {
                let role_id = match self.roles.get(role) {
                    Some(r) => r.id.clone(),
                    None => unique_id("AROA", &format!("arn:aws:iam::{account}:role/{role}")),
                };
                format!("{role_id}:{session}")
            } else if let Some(user) = resource.strip_prefix("user/") {
                let name = user.rsplit('/').next().unwrap_or(user);
                match self.users.get(name) {
                    Some(u) => u.id.clone(),
                    None => unique_id("AIDA", arn),
                }
            } else {
                account.clone()
            };
        (account, arn.clone(), user_id)
    }

    /// GetRole.
    pub fn get_role(&self, name: &str) -> Result<&Principal, ApiError> {
        self.roles.get(name).ok_or_else(|| no_such_role(name))
    }

    /// The role or user a `PolicySourceArn` names, with its `SourcePolicyType`. An ARN that is not an IAM
    /// role or user ARN is `InvalidInput` (an STS assumed-role ARN among them); one whose name or path
    /// matches no principal of the account is `NoSuchEntity`.
    fn policy_source(&self, arn: &str) -> Result<(&Principal, &'static str), ApiError> {
        let invalid = || {
            ApiError::new(
                400,
                "InvalidInput",
                format!("Invalid ARN provided in the request: {arn}"),
            )
        };
        let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
        let (account, resource) = rest.split_once(':').ok_or_else(invalid)?;
        let (kind, path_and_name) = resource.split_once('/').ok_or_else(invalid)?;
        let (path, name) = match path_and_name.rsplit_once('/') {
            Some((p, n)) => (format!("/{p}/"), n),
            None => ("/".to_owned(), path_and_name),
        };
        let (found, source_type, missing) = match kind {
            "role" => (self.roles.get(name), "role", no_such_role(name)),
            "user" => (
                self.users.get(name),
                "user",
                ApiError::new(
                    404,
                    "NoSuchEntity",
                    format!("The user with name {name} cannot be found."),
                ),
            ),
            _ => return Err(invalid()),
        };
        match found {
            Some(p) if account == self.account && p.path == path => Ok((p, source_type)),
            _ => Err(missing),
        }
    }

    /// SimulatePrincipalPolicy: one evaluation per action and resource (per action on `*` when no
    /// resource is given), in request order, action by action.
    pub fn simulate(&self, s: &Simulation) -> Result<Vec<Evaluation>, ApiError> {
        if self.simulator == SimulatorMode::AccessDenied {
            return Err(ApiError::new(
                403,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: iam:SimulatePrincipalPolicy on resource: {} because no identity-based policy allows the iam:SimulatePrincipalPolicy action",
                    self.caller_arn, s.policy_source_arn
                ),
            ));
        }
        let (source, source_type) = self.policy_source(&s.policy_source_arn)?;
        let any = ["*".to_owned()];
        let resources: &[String] = if s.resources.is_empty() { &any } else { &s.resources };
        let given = |key: &str| s.context.iter().any(|c| c.key.eq_ignore_ascii_case(key));
        let mut out = Vec::new();
        for action in &s.actions {
            for resource in resources {
                let applying: Vec<(usize, &IamRule)> = self
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.matches(action, resource))
                    .filter(|(_, r)| {
                        r.effect != RuleEffect::MissingContext
                            || !given(r.context_key.as_deref().unwrap_or(DEFAULT_CONTEXT_KEY))
                    })
                    .collect();
                let deciding = applying
                    .iter()
                    .find(|(_, r)| r.effect == RuleEffect::ExplicitDeny)
                    .or(applying.first());
                let mut e = Evaluation {
                    action: action.clone(),
                    resource: resource.clone(),
                    decision: Decision::Allowed,
                    matched_statements: vec![format!("{}-policy", source.name)],
                    source_type,
                    missing_context: Vec::new(),
                    allowed_by_organizations: None,
                    allowed_by_permissions_boundary: None,
                };
                if let Some((i, rule)) = deciding {
                    e.decision = Decision::ImplicitDeny;
                    e.matched_statements.clear();
                    match rule.effect {
                        RuleEffect::ExplicitDeny => {
                            e.decision = Decision::ExplicitDeny;
                            e.matched_statements.push(format!("awsim-rule-{}", i + 1));
                        }
                        RuleEffect::ImplicitDeny => {}
                        RuleEffect::ScpDeny => e.allowed_by_organizations = Some(false),
                        RuleEffect::BoundaryDeny => e.allowed_by_permissions_boundary = Some(false),
                        RuleEffect::MissingContext => e.missing_context.push(
                            rule.context_key
                                .clone()
                                .unwrap_or_else(|| DEFAULT_CONTEXT_KEY.to_owned()),
                        ),
                    }
                }
                out.push(e);
            }
        }
        Ok(out)
    }
}

fn no_such_role(name: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchEntity",
        format!("The role with name {name} cannot be found."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_iam_matches_them() {
        assert!(glob("*", "arn:aws:route53:::hostedzone/Z1"));
        assert!(glob(
            "arn:aws:rds:*:123456789012:cluster:orders-*",
            "arn:aws:rds:us-east-1:123456789012:cluster:orders-east"
        ));
        assert!(!glob(
            "arn:aws:rds:*:cluster:orders-*",
            "arn:aws:rds:us-east-1:123456789012:global-cluster:orders"
        ));
        assert!(glob("rds:failover?lobalcluster", "rds:failoverglobalcluster"));
        assert!(!glob("rds:Describe*", "route53:DescribeX"));
    }

    #[test]
    fn callers_are_assumed_roles_users_or_root() {
        check_caller(&default_caller("123456789012")).unwrap();
        check_caller("arn:aws:iam::123456789012:user/ops/alice").unwrap();
        check_caller("arn:aws:iam::123456789012:root").unwrap();
        assert!(check_caller("arn:aws:sts::123456789012:assumed-role/bot").is_err());
        assert!(check_caller("arn:aws:iam::1234:user/alice").is_err());
        assert!(check_caller("bot").is_err());
    }

    #[test]
    fn unique_ids_are_stable_and_look_like_iams() {
        let a = unique_id("AROA", "arn:aws:iam::123456789012:role/x");
        assert_eq!(a, unique_id("AROA", "arn:aws:iam::123456789012:role/x"));
        assert_ne!(a, unique_id("AROA", "arn:aws:iam::123456789012:role/y"));
        assert_eq!(a.len(), 21);
        assert!(a.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    }
}
