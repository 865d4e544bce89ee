//! Which Slack workspace and app the bot belongs to, and whether a verified request comes from them.
//!
//! A valid signature proves a request was signed with the app's signing secret; it does not prove the
//! request is about this workspace (a secret shared between installs, or a payload forwarded from
//! elsewhere, would still verify). So every command and click is also checked against the workspace
//! (`team_id`), the app (`api_app_id`) and the Enterprise Grid organisation (`enterprise_id`) the bot
//! is bound to, before it is parsed any further. Org-wide installs (`is_enterprise_install`) are not
//! supported: the manifest keeps `org_deploy_enabled: false`.
//!
//! The workspace is `slack.team_id`, or, when that is not configured, learned from `auth.test` at
//! start-up. Until it is known, the bot refuses inbound Slack requests (with a logged reason) but
//! still starts, resumes runs and answers `/healthz`.

use serde::Deserialize;
use std::sync::RwLock;

/// What a request says about where it comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    pub team_id: Option<String>,
    pub app_id: Option<String>,
    pub enterprise_id: Option<String>,
    pub enterprise_install: bool,
}

/// Why a verified request was not honoured. Logged, never shown to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Foreign {
    #[error("the bot's workspace is not known yet (slack.team_id is not set and auth.test has not answered)")]
    WorkspaceUnknown,
    #[error("the request is from workspace {got:?}, not {expected}")]
    Team { got: Option<String>, expected: String },
    #[error("the request is for app {got:?}, not {expected}")]
    App { got: Option<String>, expected: String },
    #[error("the request is from Enterprise Grid organisation {got:?}, not {expected:?}")]
    Enterprise {
        got: Option<String>,
        expected: Option<String>,
    },
    #[error("the request comes from an org-wide install, which the bot does not support")]
    OrgInstall,
}

/// The workspace, app and organisation the bot belongs to.
#[derive(Debug, Default)]
pub struct Binding {
    /// Configured, or learned from `auth.test`; `None` until known. A lock rather than a `OnceLock`
    /// only so that tests can build a binding in any state.
    team_id: RwLock<Option<String>>,
    app_id: Option<String>,
    /// Configured, or learned from `auth.test` (`Some(None)`: the workspace is in no organisation);
    /// `None` while unknown, when the workspace (whose id is unique across Slack) is what counts.
    enterprise_id: RwLock<Option<Option<String>>>,
}

impl Binding {
    pub fn new(team_id: Option<String>, app_id: Option<String>, enterprise_id: Option<String>) -> Binding {
        Binding {
            team_id: RwLock::new(team_id),
            app_id,
            enterprise_id: RwLock::new(enterprise_id.map(Some)),
        }
    }

    /// The workspace, once known.
    pub fn team_id(&self) -> Option<String> {
        self.team_id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records the workspace and organisation `auth.test` named (each only if not known yet).
    pub fn learn(&self, team_id: &str, enterprise_id: Option<&str>) {
        let mut t = self.team_id.write().unwrap_or_else(|p| p.into_inner());
        if t.is_none() {
            *t = Some(team_id.to_owned());
        }
        let mut e = self.enterprise_id.write().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(enterprise_id.map(str::to_owned));
        }
    }

    /// Whether a verified request with these claims may be acted on.
    pub fn check(&self, c: &Claimed) -> Result<(), Foreign> {
        if c.enterprise_install {
            return Err(Foreign::OrgInstall);
        }
        let Some(team) = self.team_id() else {
            return Err(Foreign::WorkspaceUnknown);
        };
        if c.team_id.as_deref() != Some(team.as_str()) {
            return Err(Foreign::Team {
                got: c.team_id.clone(),
                expected: team,
            });
        }
        if let Some(app) = &self.app_id
            && c.app_id.as_deref() != Some(app.as_str())
        {
            return Err(Foreign::App {
                got: c.app_id.clone(),
                expected: app.clone(),
            });
        }
        // A workspace outside Enterprise Grid gets requests without an enterprise id; one inside gets
        // its organisation's. Slack sends an empty string or null for "none".
        let got = c.enterprise_id.clone().filter(|e| !e.is_empty());
        if let Some(expected) = self.enterprise_id.read().unwrap_or_else(|p| p.into_inner()).clone()
            && got != expected
        {
            return Err(Foreign::Enterprise { got, expected });
        }
        Ok(())
    }
}

/// The claims of a slash command's form body.
pub fn command_claims(form: &[u8]) -> Claimed {
    let mut c = Claimed::default();
    for (k, v) in form_urlencoded::parse(form) {
        match k.as_ref() {
            "team_id" => c.team_id = Some(v.into_owned()),
            "api_app_id" => c.app_id = Some(v.into_owned()),
            "enterprise_id" => c.enterprise_id = Some(v.into_owned()),
            "is_enterprise_install" => c.enterprise_install = v == "true",
            _ => {}
        }
    }
    c
}

/// The claims of a slash command delivered over Socket Mode: the envelope's `payload`, a JSON object
/// with the same fields as the HTTP form (`team_id`, `api_app_id`, `enterprise_id`,
/// `is_enterprise_install` as `"true"`/`"false"`, or a boolean).
pub fn command_claims_json(payload: &serde_json::Value) -> Claimed {
    let text = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Claimed {
        team_id: text("team_id"),
        app_id: text("api_app_id"),
        enterprise_id: text("enterprise_id"),
        enterprise_install: match payload.get("is_enterprise_install") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        },
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<String>,
}

#[derive(Deserialize)]
struct PayloadClaims {
    team: Option<IdOnly>,
    api_app_id: Option<String>,
    enterprise: Option<IdOnly>,
    #[serde(default)]
    is_enterprise_install: bool,
}

/// The claims of an interaction payload (`payload` JSON of a block action or view submission).
pub fn payload_claims(payload: &str) -> Claimed {
    match serde_json::from_str::<PayloadClaims>(payload) {
        Ok(p) => Claimed {
            team_id: p.team.and_then(|t| t.id),
            app_id: p.api_app_id,
            enterprise_id: p.enterprise.and_then(|e| e.id),
            enterprise_install: p.is_enterprise_install,
        },
        Err(_) => Claimed::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Claimed {
        Claimed {
            team_id: Some("T0OURS".into()),
            app_id: Some("A0OURS".into()),
            enterprise_id: None,
            enterprise_install: false,
        }
    }

    #[test]
    fn a_socket_mode_command_claims_what_its_http_form_would() {
        let json = serde_json::json!({"team_id": "T0OURS", "api_app_id": "A0OURS", "is_enterprise_install": "false"});
        let form = b"team_id=T0OURS&api_app_id=A0OURS&is_enterprise_install=false";
        assert_eq!(command_claims_json(&json), command_claims(form));
        let org = serde_json::json!({"team_id": "T0OURS", "is_enterprise_install": true});
        assert!(command_claims_json(&org).enterprise_install);
    }

    #[test]
    fn only_the_bots_own_workspace_app_and_organisation_are_honoured() {
        let b = Binding::new(Some("T0OURS".into()), Some("A0OURS".into()), None);
        // auth.test said: in no Enterprise Grid organisation.
        b.learn("T0OURS", None);
        assert_eq!(b.check(&ours()), Ok(()));
        let mut c = ours();
        c.enterprise_id = Some(String::new());
        assert_eq!(b.check(&c), Ok(()), "an empty enterprise id means none");
        for (edit, what) in [
            (
                Box::new(|c: &mut Claimed| c.team_id = Some("T0OTHER".into())) as Box<dyn Fn(&mut Claimed)>,
                "team",
            ),
            (Box::new(|c: &mut Claimed| c.team_id = None), "no team"),
            (Box::new(|c: &mut Claimed| c.app_id = Some("A0OTHER".into())), "app"),
            (
                Box::new(|c: &mut Claimed| c.enterprise_id = Some("E0OTHER".into())),
                "enterprise",
            ),
            (Box::new(|c: &mut Claimed| c.enterprise_install = true), "org install"),
        ] {
            let mut c = ours();
            edit(&mut c);
            assert!(b.check(&c).is_err(), "{what} must be refused");
        }
    }

    #[test]
    fn nothing_is_honoured_until_the_workspace_is_known_and_it_is_learned_once() {
        let b = Binding::new(None, None, None);
        assert_eq!(b.check(&ours()), Err(Foreign::WorkspaceUnknown));
        b.learn("T0OURS", None);
        b.learn("T0LATER", Some("E0LATER"));
        assert_eq!(b.team_id().as_deref(), Some("T0OURS"));
        assert_eq!(b.check(&ours()), Ok(()), "no app configured: any app id passes");
        let mut grid = ours();
        grid.enterprise_id = Some("E0OTHER".into());
        assert!(b.check(&grid).is_err(), "learned: in no organisation");
        // The workspace configured, its organisation not (yet) known: the workspace id counts alone.
        let b = Binding::new(Some("T0OURS".into()), None, None);
        assert_eq!(b.check(&grid), Ok(()));
    }

    #[test]
    fn claims_are_read_from_commands_and_payloads() {
        let c = command_claims(b"team_id=T1&api_app_id=A1&enterprise_id=E1&is_enterprise_install=false&text=x");
        assert_eq!(c.team_id.as_deref(), Some("T1"));
        assert_eq!(c.app_id.as_deref(), Some("A1"));
        assert_eq!(c.enterprise_id.as_deref(), Some("E1"));
        let p =
            payload_claims(r#"{"team":{"id":"T2"},"api_app_id":"A2","enterprise":null,"is_enterprise_install":true}"#);
        assert_eq!(p.team_id.as_deref(), Some("T2"));
        assert_eq!(p.enterprise_id, None);
        assert!(p.enterprise_install);
    }
}
