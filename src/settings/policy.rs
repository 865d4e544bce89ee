//! Approval policy: who may request and who may approve what, per cluster and per action, and whom
//! to mention. The `[approval]` section holds the defaults; `[approval.MODE]`, `[clusters.approval]`
//! and `[clusters.approval.MODE]` narrow them. Each key is taken from the most specific place that
//! sets it, in this order: `[clusters.approval.MODE]`, `[clusters.approval]`, `[approval.MODE]`,
//! `[approval]`, the built-in default (one approver, no reason, no ticket): a config that sets none of
//! the new keys keeps the bot's behaviour from before policies.

use super::{ConfigError, invalid, principals};
use crate::types::{ClusterName, Mode, Principal};
use serde::Deserialize;
use std::collections::HashMap;

/// Most approvals a policy may require (more is a mistake, not a policy).
pub const MAX_APPROVALS: u64 = 10;
/// Longest `ticket_pattern`, in bytes.
const MAX_PATTERN_LEN: usize = 200;

/// What a policy governs: one of the three modes, or a rebuild after a detach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Detach,
    Failover,
    Switchover,
    Rebuild,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Detach, Action::Failover, Action::Switchover, Action::Rebuild];

    /// The key of its table (`[approval.detach]`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Detach => "detach",
            Action::Failover => "failover",
            Action::Switchover => "switchover",
            Action::Rebuild => "rebuild",
        }
    }
}

impl From<Mode> for Action {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Detach => Action::Detach,
            Mode::Failover => Action::Failover,
            Mode::Switchover => Action::Switchover,
            Mode::Rebuild => Action::Rebuild,
        }
    }
}

/// A ticket reference a request must name (`ticket_pattern`): a regular expression (regex-lite
/// syntax, <https://docs.rs/regex-lite>) that the whole of `--ticket` must match.
#[derive(Debug, Clone)]
pub struct TicketPattern {
    source: String,
    whole: regex_lite::Regex,
}

impl TicketPattern {
    /// The pattern as configured, for showing the rule.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether all of `ticket` matches.
    pub fn matches(&self, ticket: &str) -> bool {
        self.whole.is_match(ticket)
    }
}

impl PartialEq for TicketPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for TicketPattern {}

/// The rules for one cluster and action, resolved from the layers above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub requesters: Vec<Principal>,
    pub approvers: Vec<Principal>,
    /// How many distinct people must approve (1 to 10). The requester never counts; a person counts
    /// once whatever lists they are in.
    pub approvals_required: usize,
    /// `--reason` must be given.
    pub require_reason: bool,
    /// `--ticket` must be given and match.
    pub ticket: Option<TicketPattern>,
}

/// One cluster's policies: for a request whose mode is still to be chosen (`any`), and per action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    any: Policy,
    per_action: HashMap<Action, Policy>,
}

impl Policies {
    /// The policy for `action`; `None`: a request whose mode the bot is still to choose (the mode's own
    /// policy applies again once the plan has chosen it).
    pub fn get(&self, action: Option<Action>) -> &Policy {
        action.and_then(|a| self.per_action.get(&a)).unwrap_or(&self.any)
    }

    /// Every action's policy, and the one for an unchosen mode.
    pub fn all(&self) -> impl Iterator<Item = &Policy> {
        std::iter::once(&self.any).chain(self.per_action.values())
    }
}

/// Whom to mention (`[clusters.notify]`): user ids (`<@U…>`) or user groups (`<!subteam^S…>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    /// Mentioned in the approval request when a request is posted.
    pub request: Vec<Principal>,
    /// Mentioned in the thread when a run needs attention.
    pub attention: Vec<Principal>,
}

/// `[approval]` with its per-action tables: what every cluster inherits.
#[derive(Debug, Clone)]
pub struct ApprovalPolicy {
    defaults: Policies,
    clusters: HashMap<ClusterName, (Policies, Notify)>,
}

impl ApprovalPolicy {
    /// The policy for `cluster` and `action` (the `[approval]` defaults for a cluster not configured).
    pub fn policy(&self, cluster: &ClusterName, action: Option<Action>) -> &Policy {
        self.clusters
            .get(cluster)
            .map_or(&self.defaults, |(p, _)| p)
            .get(action)
    }

    /// Whom to mention for `cluster`.
    pub fn notify(&self, cluster: &ClusterName) -> &Notify {
        static NOBODY: Notify = Notify {
            request: Vec::new(),
            attention: Vec::new(),
        };
        self.clusters.get(cluster).map_or(&NOBODY, |(_, n)| n)
    }

    /// Every policy of every cluster (and the defaults).
    pub fn every(&self) -> impl Iterator<Item = &Policy> {
        self.defaults
            .all()
            .chain(self.clusters.values().flat_map(|(p, _)| p.all()))
    }
}

/// The keys a policy layer may set.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    requesters: Option<Vec<String>>,
    approvers: Option<Vec<String>>,
    approvals_required: Option<u64>,
    require_reason: Option<bool>,
    ticket_pattern: Option<String>,
}

/// A layer with its per-action tables (`[clusters.approval]`; `[approval]` is read into the same
/// shape by `RawApprovalRules::from_section`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    requesters: Option<Vec<String>>,
    approvers: Option<Vec<String>>,
    approvals_required: Option<u64>,
    require_reason: Option<bool>,
    ticket_pattern: Option<String>,
    detach: Option<RawPolicy>,
    failover: Option<RawPolicy>,
    switchover: Option<RawPolicy>,
    rebuild: Option<RawPolicy>,
}

impl RawRules {
    /// `[approval]`'s policy keys and tables (its `requesters` and `approvers` are required there).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn section(
        requesters: &[String],
        approvers: &[String],
        approvals_required: Option<u64>,
        require_reason: Option<bool>,
        ticket_pattern: Option<String>,
        per_action: [Option<RawPolicy>; 4],
    ) -> RawRules {
        let [detach, failover, switchover, rebuild] = per_action;
        RawRules {
            requesters: Some(requesters.to_vec()),
            approvers: Some(approvers.to_vec()),
            approvals_required,
            require_reason,
            ticket_pattern,
            detach,
            failover,
            switchover,
            rebuild,
        }
    }

    fn base(&self) -> RawPolicy {
        RawPolicy {
            requesters: self.requesters.clone(),
            approvers: self.approvers.clone(),
            approvals_required: self.approvals_required,
            require_reason: self.require_reason,
            ticket_pattern: self.ticket_pattern.clone(),
        }
    }

    fn action(&self, a: Action) -> Option<&RawPolicy> {
        match a {
            Action::Detach => self.detach.as_ref(),
            Action::Failover => self.failover.as_ref(),
            Action::Switchover => self.switchover.as_ref(),
            Action::Rebuild => self.rebuild.as_ref(),
        }
    }
}

/// `[clusters.notify]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    request: Option<Vec<String>>,
    attention: Option<Vec<String>>,
}

/// One layer as found in the file: its keys and where they are (`approval`, `approval.detach`,
/// `clusters[0].approval`, ...).
struct Layer<'r> {
    at: String,
    keys: &'r RawPolicy,
}

/// Resolves one key through `layers`, most specific first: the value and the key it came from.
fn first<'r, T>(layers: &[Layer<'r>], key: &str, get: impl Fn(&'r RawPolicy) -> Option<T>) -> Option<(T, String)> {
    layers
        .iter()
        .find_map(|l| get(l.keys).map(|v| (v, format!("{}.{key}", l.at))))
}

/// The policy `layers` (most specific first) make, for `place` (e.g. `detach of cluster billing`,
/// for errors).
fn resolve(layers: &[Layer<'_>], place: &str) -> Result<Policy, ConfigError> {
    let list = |key: &str| -> Result<(Vec<Principal>, String), ConfigError> {
        match first(layers, key, |k| match key {
            "requesters" => k.requesters.as_ref(),
            _ => k.approvers.as_ref(),
        }) {
            Some((v, at)) => Ok((principals(&at, v)?, at)),
            None => Err(invalid(format!("approval.{key}"), "is missing")),
        }
    };
    let ((requesters, _), (approvers, approvers_at)) = (list("requesters")?, list("approvers")?);
    let approvals_required = match first(layers, "approvals_required", |k| k.approvals_required) {
        None => 1,
        Some((n, at)) => {
            let n = in_range(&at, n)?;
            possible(&at, n, place, (&requesters, &approvers, &approvers_at))?
        }
    };
    let ticket = first(layers, "ticket_pattern", |k| k.ticket_pattern.as_deref())
        .map(|(p, at)| ticket_pattern(&at, p))
        .transpose()?;
    Ok(Policy {
        requesters,
        approvers,
        approvals_required,
        require_reason: first(layers, "require_reason", |k| k.require_reason).is_some_and(|(v, _)| v),
        ticket,
    })
}

/// `approvals_required` at `key`: 1 to `MAX_APPROVALS`.
fn in_range(key: &str, n: u64) -> Result<usize, ConfigError> {
    if !(1..=MAX_APPROVALS).contains(&n) {
        return Err(invalid(
            key,
            format!("{n} is out of range: must be between 1 and {MAX_APPROVALS} approvals"),
        ));
    }
    Ok(n as usize)
}

/// `n` approvals (set at `key`) for `place`, possible from `approvers` (set at `approvers_at`) when
/// they list only users (a user group's size is Slack's to say): there are `n` of them, and `n`
/// besides any requester who is one of them (a requester never approves their own request).
fn possible(
    key: &str,
    n: usize,
    place: &str,
    (requesters, approvers, approvers_at): (&[Principal], &[Principal], &str),
) -> Result<usize, ConfigError> {
    if approvers.iter().any(|p| matches!(p, Principal::Group(_))) {
        return Ok(n);
    }
    let users: std::collections::HashSet<_> = approvers.iter().collect();
    if users.len() < n {
        return Err(invalid(
            key,
            format!(
                "{n} approvals can never be given for {place}: its approvers ({approvers_at}) name only {} \
                 user(s) and no user group",
                users.len()
            ),
        ));
    }
    if let Some(r) = requesters.iter().find(|r| users.contains(r))
        && users.len() - 1 < n
    {
        return Err(invalid(
            key,
            format!(
                "{n} approvals can never be given for {place} when {r} asks: a requester never approves their own \
                 request, and its approvers ({approvers_at}) name only {} other user(s)",
                users.len() - 1
            ),
        ));
    }
    Ok(n)
}

/// `ticket_pattern` at `key`: a regular expression that matches a whole ticket and not an empty one.
fn ticket_pattern(key: &str, p: &str) -> Result<TicketPattern, ConfigError> {
    if p.trim().is_empty() {
        return Err(invalid(key, "is empty; leave the key out instead"));
    }
    if p.len() > MAX_PATTERN_LEN {
        return Err(invalid(key, format!("is longer than {MAX_PATTERN_LEN} characters")));
    }
    let whole = regex_lite::Regex::new(&format!("^(?:{p})$"))
        .map_err(|e| invalid(key, format!("{p:?} is not a regular expression: {e}")))?;
    if whole.is_match("") {
        return Err(invalid(
            key,
            format!("{p:?} matches an empty ticket; require at least one character"),
        ));
    }
    Ok(TicketPattern {
        source: p.to_owned(),
        whole,
    })
}

/// The policies of one place: `cluster` (its `[clusters.approval]` at `cluster_at`), or the
/// defaults when `cluster` is `None`; `name` is the cluster's (for errors).
fn policies(
    global: &RawRules,
    cluster: Option<(&RawRules, &str)>,
    name: Option<&ClusterName>,
) -> Result<Policies, ConfigError> {
    let of = name.map_or_else(|| "every cluster".to_owned(), |n| format!("cluster {n}"));
    let global_base = global.base();
    let cluster_base = cluster.map(|(c, at)| (c.base(), at));
    let layers_for = |action: Option<Action>| {
        let mut layers = Vec::new();
        if let Some(((c, at), a)) = cluster.zip(action)
            && let Some(k) = c.action(a)
        {
            layers.push(Layer {
                at: format!("{at}.{}", a.as_str()),
                keys: k,
            });
        }
        if let Some((k, at)) = &cluster_base {
            layers.push(Layer {
                at: (*at).to_owned(),
                keys: k,
            });
        }
        if let Some(a) = action
            && let Some(k) = global.action(a)
        {
            layers.push(Layer {
                at: format!("approval.{}", a.as_str()),
                keys: k,
            });
        }
        layers.push(Layer {
            at: "approval".to_owned(),
            keys: &global_base,
        });
        layers
    };
    let any = resolve(&layers_for(None), &format!("a request of {of}"))?;
    let mut per_action = HashMap::new();
    for a in Action::ALL {
        per_action.insert(a, resolve(&layers_for(Some(a)), &format!("{} of {of}", a.as_str()))?);
    }
    Ok(Policies { any, per_action })
}

/// `[clusters.notify]` at `at`.
fn notify(at: &str, raw: Option<&RawNotify>) -> Result<Notify, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Notify::default());
    };
    let list = |key: &str, v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| principals(&format!("{at}.{key}"), v))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(Notify {
        request: list("request", &raw.request)?,
        attention: list("attention", &raw.attention)?,
    })
}

/// A cluster's `[clusters.approval]` and `[clusters.notify]`, by name, with where they are.
pub(super) struct ClusterRules<'r> {
    pub name: ClusterName,
    pub index: usize,
    pub approval: Option<&'r RawRules>,
    pub notify: Option<&'r RawNotify>,
}

/// Checks every layer and resolves every cluster's policies.
pub(super) fn check(global: &RawRules, clusters: Vec<ClusterRules<'_>>) -> Result<ApprovalPolicy, ConfigError> {
    let defaults = policies(global, None, None)?;
    let mut by_name = HashMap::new();
    for c in clusters {
        let at = format!("clusters[{}]", c.index);
        let approval_at = format!("{at}.approval");
        let p = policies(global, c.approval.map(|a| (a, approval_at.as_str())), Some(&c.name))?;
        let n = notify(&format!("{at}.notify"), c.notify)?;
        by_name.insert(c.name, (p, n));
    }
    Ok(ApprovalPolicy {
        defaults,
        clusters: by_name,
    })
}

#[cfg(test)]
mod tests;
