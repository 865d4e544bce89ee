//! The sandbox's routes on the bot's server: the page and its assets (embedded in the binary), the
//! state as JSON and as server-sent events, and the actions. Every route checks the `Host` header
//! (loopback names only, unless `--allow-remote`), against DNS rebinding; every POST needs the header
//! `x-sandbox: 1`, which a cross-site form cannot send.

use super::controls::Control;
use super::sandbox::{Refused, Sandbox};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");

/// How often an event stream looks for a change to send.
const TICK: Duration = Duration::from_millis(250);
/// How often an event stream says it is alive (`event: ping`) when nothing changed: the page replaces
/// a stream it has not heard from in 15 s.
const PING_EVERY: u32 = 20;

type Shared = State<Arc<Sandbox>>;

/// The sandbox's routes, to merge into the bot's router.
pub fn router(sandbox: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/sandbox/") }))
        .route("/sandbox", get(|| async { Redirect::to("/sandbox/") }))
        .route("/sandbox/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route(
            "/sandbox/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/sandbox/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/sandbox/icon.svg", get(|| async { asset("image/svg+xml", ICON) }))
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/sandbox/icon.svg") }),
        )
        .route("/sandbox/api/state", get(state))
        .route("/sandbox/api/timeline.json", get(timeline))
        .route("/sandbox/events", get(events))
        .route("/sandbox/api/command", post(command))
        .route("/sandbox/api/click", post(click))
        .route("/sandbox/api/submit", post(submit))
        .route("/sandbox/api/modal/close", post(close_modal))
        .route("/sandbox/api/scenario", post(scenario))
        .route("/sandbox/api/control", post(control))
        .layer(axum::middleware::from_fn_with_state(sandbox.clone(), guard))
        .with_state(sandbox)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The name in a `Host` header (`name:port`, `[v6]:port`, or a bare name).
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    }
}

/// Whether `host` (a `Host` header) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    matches!(host_name(host), "127.0.0.1" | "localhost" | "::1")
}

/// Whether `host` is a loopback name or an IP address: never another DNS name, which a DNS-rebinding
/// page could point at the sandbox (with `--allow-remote`, reach it at the machine's address).
fn address_host(host: &str) -> bool {
    loopback_host(host) || host_name(host).parse::<std::net::IpAddr>().is_ok()
}

/// Refuses, with 403, a request whose `Host` is not loopback's (with `--allow-remote`: not an IP
/// address or loopback's), and a POST without `x-sandbox: 1`.
async fn guard(State(sb): Shared, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let refusal = match (sb.allow_remote, loopback_host(host), address_host(host)) {
        (false, false, _) => Some(format!(
            "the sandbox answers only at 127.0.0.1 or localhost, not at {host:?}"
        )),
        (true, _, false) => Some(format!(
            "the sandbox answers only at an IP address or localhost, not at the name {host:?}"
        )),
        _ => None,
    };
    if let Some(why) = refusal {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    if request.method() == Method::POST && headers.get("x-sandbox").and_then(|v| v.to_str().ok()) != Some("1") {
        return (
            StatusCode::FORBIDDEN,
            "sandbox actions come from the sandbox page (header x-sandbox: 1)",
        )
            .into_response();
    }
    next.run(request).await
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": self.0}))).into_response()
    }
}

/// The bot's HTTP status for a request the sandbox sent it.
fn sent(result: Result<u16, Refused>) -> Response {
    match result {
        Ok(status) => axum::Json(json!({"bot_status": status})).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn state(State(sb): Shared) -> Response {
    axum::Json(sb.state().await).into_response()
}

/// The scenario's timeline as a file to download: `{scenario, generated_at, entries, steps}`.
async fn timeline(State(sb): Shared) -> Response {
    let Some(g) = sb.generation() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the sandbox is starting").into_response();
    };
    let mut body = super::view::timeline(&*g.store).await;
    body["scenario"] = json!(g.scenario.as_str());
    body["generated_at"] = json!(jiff::Timestamp::now().to_string());
    let name = format!(
        "attachment; filename=\"timeline-{}-{}.json\"",
        g.scenario.as_str(),
        g.number
    );
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, "application/json".parse().expect("valid"));
    if let Ok(v) = name.parse() {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, serde_json::to_string_pretty(&body).unwrap_or_default()).into_response()
}

/// The state whenever it changes, as `event: state` (the first at once), until the scenario ends.
async fn events(State(sb): Shared) -> Response {
    let Some(stop) = sb.generation().map(|g| g.stop.clone()) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the sandbox is starting").into_response();
    };
    let stream = futures::stream::unfold((sb, String::new(), 0u32), move |(sb, last, quiet)| {
        let stop = stop.clone();
        async move {
            let mut quiet = quiet;
            loop {
                // The first state goes at once (`quiet` is 0 only before it).
                if !last.is_empty() {
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(TICK) => {}
                    }
                }
                let now = sb.state().await.to_string();
                if now != last {
                    let mut event = Event::default().event("state").data(&now);
                    if last.is_empty() {
                        event = event.retry(Duration::from_millis(500));
                    }
                    return Some((Ok::<_, Infallible>(event), (sb, now, 1)));
                }
                quiet += 1;
                if quiet >= PING_EVERY {
                    return Some((Ok(Event::default().event("ping").data("")), (sb, last, 1)));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    user: String,
    text: String,
}

async fn command(State(sb): Shared, axum::Json(b): axum::Json<CommandBody>) -> Response {
    sent(sb.command(&b.user, &b.text).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClickBody {
    user: String,
    ts: String,
    #[serde(default)]
    block_id: String,
    action_id: String,
    #[serde(default)]
    value: String,
}

async fn click(State(sb): Shared, axum::Json(b): axum::Json<ClickBody>) -> Response {
    sent(sb.click(&b.user, &b.ts, &b.block_id, &b.action_id, &b.value).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    user: String,
    #[serde(default)]
    values: HashMap<String, String>,
}

async fn submit(State(sb): Shared, axum::Json(b): axum::Json<SubmitBody>) -> Response {
    sent(sb.submit(&b.user, &b.values).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    user: String,
}

async fn close_modal(State(sb): Shared, axum::Json(b): axum::Json<UserBody>) -> Response {
    sb.close_modal(&b.user);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioBody {
    id: String,
}

async fn scenario(State(sb): Shared, axum::Json(b): axum::Json<ScenarioBody>) -> Response {
    match sb.start_scenario(&b.id).await {
        Ok(()) => (StatusCode::ACCEPTED, axum::Json(json!({"starting": b.id}))).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn control(State(sb): Shared, axum::Json(c): axum::Json<Control>) -> Response {
    match sb.control(c) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn with_allow_remote_only_addresses_are_accepted_never_a_name() {
        use super::address_host;
        for ok in ["10.0.0.5:3000", "[fe80::1]:3000", "localhost:3000", "192.168.1.2"] {
            assert!(address_host(ok), "{ok}");
        }
        for no in ["evil.example:3000", "10.0.0.5.nip.io:3000", "", "sandbox.local"] {
            assert!(!address_host(no), "{no}");
        }
    }

    #[test]
    fn only_loopback_names_are_this_machine() {
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "[::1]:3000",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for no in [
            "evil.example:3000",
            "127.0.0.1.evil.example",
            "10.0.0.5:3000",
            "",
            "[::2]:3000",
        ] {
            assert!(!loopback_host(no), "{no}");
        }
    }
}
