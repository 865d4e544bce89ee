//! `aurora-failover-bot demo --web`, the sandbox, through the real binary: its API signs requests to
//! the bot's real endpoints on the same server, its guards refuse what does not come from its page,
//! its scenarios restart the world, and its timeline is the audit trail `audit` prints. (The page
//! itself is tested in a browser: tests/browser.)

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aurora-failover-bot");

/// A running `demo --web`, its stdout lines collected.
struct Sandbox {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    base: String,
    http: reqwest::Client,
}

impl Drop for Sandbox {
    /// SIGTERM (so that the sandbox removes its temporary directory), SIGKILL after 10 s.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // exited (and reaped): its pid may be another process's by now
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(BIN)
        .args(["demo", "--web"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().unwrap();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

impl Sandbox {
    async fn start(args: &[&str]) -> Sandbox {
        let (child, lines) = spawn(args);
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            if let Some(u) = lines.lock().unwrap().iter().find_map(|l| l.strip_prefix("sandbox: ")) {
                break u.to_owned();
            }
            assert!(Instant::now() < deadline, "demo --web printed no URL");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/sandbox/"),
            "{url}"
        );
        Sandbox {
            child,
            lines,
            base: url.trim_end_matches("/sandbox/").to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// SIGTERM; waits (without blocking the runtime) for the exit, within 30 s.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "the sandbox did not exit within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The config of the scenario's store, from the latest `audit:` line.
    fn audit_config(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let line = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("audit: "))
            .expect("an audit line");
        line.rsplit(' ').next().unwrap().to_owned()
    }

    /// The state; `None` while the sandbox restarts (a scenario starting closes its connections).
    async fn try_state(&self) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{}/sandbox/api/state", self.base))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    async fn state(&self) -> Value {
        self.until("the state", Duration::from_secs(10), |_| true).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/sandbox/api/{path}", self.base))
            .header("x-sandbox", "1")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits until `probe` holds of the state (30 s, or `within`).
    async fn until(&self, what: &str, within: Duration, probe: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.try_state().await;
            if let Some(s) = s.as_ref().filter(|s| probe(s)) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; state: {s:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asks for `text` as alice; returns the approval request message's `ts`.
    async fn ask(&self, text: &str) -> String {
        let (status, body) = self.post("command", json!({"user": "U0ALICE", "text": text})).await;
        assert_eq!((status, body["bot_status"].as_u64()), (200, Some(200)), "{body}");
        let s = self
            .until("the approval request", Duration::from_secs(30), |s| {
                request_message(s).is_some()
            })
            .await;
        request_message(&s).unwrap()["ts"].as_str().unwrap().to_owned()
    }

    async fn click(&self, user: &str, ts: &str, action: &str) -> u16 {
        let (status, body) = self
            .post(
                "click",
                json!({"user": user, "ts": ts, "block_id": "decision", "action_id": action, "value": "1"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["bot_status"].as_u64().unwrap() as u16
    }
}

fn messages(s: &Value) -> &Vec<Value> {
    s["messages"].as_array().unwrap()
}

/// The approval request: the channel's first message from the bot (not a thread reply).
fn request_message(s: &Value) -> Option<&Value> {
    messages(s)
        .iter()
        .find(|m| m["kind"] == "message" && m["text"].as_str().unwrap().starts_with("Failover request"))
}

/// The texts only `user` sees.
fn only_for<'a>(s: &'a Value, user: &str) -> Vec<&'a str> {
    messages(s)
        .iter()
        .filter(|m| m["to"] == user)
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect()
}

fn run_state(s: &Value) -> Option<&str> {
    s["run"]["state"].as_str()
}

fn record<'a>(s: &'a Value, role: &str) -> &'a Value {
    s["aws"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == role)
        .unwrap()
}

/// What `aurora-failover-bot audit --config CONFIG --format jsonl` prints, parsed.
fn audit_jsonl(config: &str) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["audit", "--config", config, "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_failover_played_in_the_sandbox_goes_through_the_bots_real_endpoints_and_its_timeline_is_the_audit_trail() {
    let sb = Sandbox::start(&["--listen", "127.0.0.1:0"]).await;
    let page = sb.http.get(format!("{}/sandbox/", sb.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/sandbox/app.js"));
    let script = sb.http.get(format!("{}/sandbox/app.js", sb.base)).send().await.unwrap();
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let ts = sb.ask("/aurora failover orders").await;
    let s = sb.state().await;
    assert!(
        only_for(&s, "U0ALICE").contains(&"/aurora failover orders"),
        "alice's command echoed to her"
    );
    assert!(only_for(&s, "U0BOB").is_empty(), "bob sees none of alice's ephemerals");
    assert_eq!(s["run"]["request_state"], "pending");

    // The requester's own click, and a stranger's, are refused by the bot; nothing runs.
    assert_eq!(sb.click("U0ALICE", &ts, "approve").await, 200);
    assert_eq!(sb.click("U0DAVE", &ts, "approve").await, 200);
    let s = sb
        .until("both refusals", Duration::from_secs(30), |s| {
            only_for(s, "U0ALICE")
                .iter()
                .any(|t| t.contains("cannot approve your own request"))
                && only_for(s, "U0DAVE").iter().any(|t| t.contains("not an approver"))
        })
        .await;
    assert_eq!(s["run"]["request_state"], "pending");
    assert!(run_state(&s).is_none());

    assert_eq!(sb.click("U0BOB", &ts, "approve").await, 200);
    let s = sb
        .until("the run's end", Duration::from_secs(90), |s| {
            run_state(s).is_some_and(|r| r != "running")
        })
        .await;
    assert_eq!(run_state(&s), Some("succeeded"), "{s:#}");
    // The store records the end before the outbox delivers its last reply (CI saw the page read
    // in between, on a loaded machine): wait for the reply too.
    let s = sb
        .until("the run's last reply", Duration::from_secs(30), |s| {
            request_message(s)
                .and_then(|r| r["replies"].as_array().and_then(|a| a.last()).cloned())
                .is_some_and(|last| last["text"].as_str().is_some_and(|t| t.contains("complete")))
        })
        .await;
    assert_eq!(record(&s, "writer")["points_to"], "orders-west writer endpoint");
    assert_eq!(record(&s, "reader")["points_to"], "orders-west reader endpoint");
    let request = request_message(&s).unwrap();
    assert_eq!(
        request["edited"], true,
        "the request message shows where the run stands"
    );
    let replies: Vec<&str> = request["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert!(
        replies.iter().any(|r| r.contains("Approved by <@U0BOB>")),
        "{replies:#?}"
    );
    assert!(replies.iter().any(|r| r.contains("INSYNC")), "{replies:#?}");
    assert!(replies.last().unwrap().contains("complete"), "{replies:#?}");

    // The timeline, as the page shows it and as a download, is what `audit` prints.
    let audit = audit_jsonl(s["audit_config"].as_str().unwrap());
    assert_eq!(sb.audit_config(), s["audit_config"].as_str().unwrap());
    assert!(audit.iter().any(|e| e["kind"] == "decision" && e["user"] == "U0BOB"));
    assert!(audit.iter().any(|e| e["kind"] == "run" && e["what"] == "succeeded"));
    let download = sb
        .http
        .get(format!("{}/sandbox/api/timeline.json", sb.base))
        .send()
        .await
        .unwrap();
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let file: Value = download.json().await.unwrap();
    assert_eq!(file["entries"].as_array().unwrap(), &audit);
    assert_eq!(s["timeline"]["entries"].as_array().unwrap(), &audit);
    let steps = file["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(names.contains(&"precheck") && names.len() >= 5, "{names:?}");
    for step in steps {
        assert_eq!(step["outcome"], "finished", "{step}");
        assert!(step["duration_ms"].as_i64().unwrap() >= 0);
    }
}

#[tokio::test]
async fn the_sandbox_refuses_what_does_not_come_from_its_page_and_bad_input_changes_nothing() {
    let sb = Sandbox::start(&["--listen", "127.0.0.1:0"]).await;
    let before = sb.state().await;
    // Another Host (DNS rebinding) and a POST without the page's header (a cross-site form).
    let rebound = sb
        .http
        .get(format!("{}/sandbox/api/state", sb.base))
        .header("host", "attacker.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let forged = sb
        .http
        .post(format!("{}/sandbox/api/command", sb.base))
        .json(&json!({"user": "U0ALICE", "text": "/aurora failover orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Bad input: a clear 400 naming the problem.
    for (path, body, says) in [
        (
            "command",
            json!({"user": "U0EVE", "text": "/aurora status"}),
            "not a sandbox user",
        ),
        (
            "command",
            json!({"user": "U0ALICE", "text": "/deploy prod"}),
            "/aurora help",
        ),
        (
            "control",
            json!({"control": "region", "region": "eu-west-9", "up": false}),
            "not a Region",
        ),
        (
            "control",
            json!({"control": "lag", "ms": 100_000_000}),
            "more than the sandbox allows",
        ),
        (
            "control",
            json!({"control": "throttle", "action": "DeleteDBCluster", "count": 1}),
            "not an action",
        ),
        (
            "control",
            json!({"control": "cname", "record": "mx", "region": "us-west-2"}),
            "writer or reader",
        ),
        ("scenario", json!({"id": "meteor-strike"}), "no scenario"),
        (
            "click",
            json!({"user": "U0BOB", "ts": "1700000000.000001", "action_id": "approve", "value": "1"}),
            "not in this scenario's channel",
        ),
        ("submit", json!({"user": "U0BOB", "values": {}}), "no modal is open"),
    ] {
        let (status, answer) = sb.post(path, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let (status, _) = sb.post("control", json!({"control": "explode"})).await;
    assert_eq!(status, 422, "an unknown control is refused by its shape");
    let after = sb.state().await;
    assert_eq!(after["messages"], before["messages"], "nothing was said or sent");
    assert_eq!(after["aws"], before["aws"], "the emulator is unchanged");
    // The bot's own endpoint on the same server still wants Slack's signature.
    let unsigned = sb
        .http
        .post(format!("{}/slack/commands", sb.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("command=%2Faurora&text=failover+orders&user_id=U0ALICE")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
}

#[tokio::test]
async fn the_sandbox_listens_on_loopback_unless_told_otherwise() {
    let out = Command::new(BIN)
        .args(["demo", "--web", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote") && err.contains("loopback"), "{err}");
    assert!(out.stdout.is_empty(), "nothing started");

    let usage = Command::new(BIN).args(["demo", "--allow-remote"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "--allow-remote needs --web");

    // --allow-remote: a warning naming the bound address; an IP address is accepted as Host, a DNS
    // name (what a DNS-rebinding page would use) never is.
    let mut sb = Sandbox::start(&["--listen", "0.0.0.0:0", "--allow-remote"]).await;
    let port = sb.base.rsplit(':').next().unwrap().to_owned();
    for (host, status) in [(format!("10.1.2.3:{port}"), 200), (format!("evil.example:{port}"), 403)] {
        let resp = sb
            .http
            .get(format!("{}/sandbox/api/state", sb.base))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "Host: {host}");
    }
    assert!(sb.terminate().await.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut sb.child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains(&format!("WARNING: the sandbox listens on 0.0.0.0:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_scenario_starts_a_fresh_world_and_us_east_1_goes_down_during_the_detach() {
    let sb = Sandbox::start(&["--listen", "127.0.0.1:0"]).await;
    sb.ask("/aurora failover orders").await;
    let first_config = sb.state().await["audit_config"].as_str().unwrap().to_owned();

    let (status, _) = sb.post("scenario", json!({"id": "east-lost-during-detach"})).await;
    assert_eq!(status, 202);
    let s = sb
        .until("the new scenario", Duration::from_secs(30), |s| {
            s["scenario"]["id"] == "east-lost-during-detach"
        })
        .await;
    assert_eq!(s["generation"], 2);
    assert_ne!(s["audit_config"], first_config.as_str(), "a fresh store");
    assert_eq!(sb.audit_config(), s["audit_config"].as_str().unwrap());
    assert!(request_message(&s).is_none(), "the channel starts empty: {s:#}");
    assert!(s["run"].is_null());
    assert!(s["scenario"]["goal"].as_str().unwrap().contains("--mode detach"));

    // The event stream sends the state at once.
    let mut events = sb.http.get(format!("{}/sandbox/events", sb.base)).send().await.unwrap();
    let chunk = String::from_utf8_lossy(&events.chunk().await.unwrap().unwrap()).into_owned();
    assert!(chunk.starts_with("retry:") || chunk.contains("event: state"), "{chunk}");

    let ts = sb.ask("/aurora failover orders --mode detach").await;
    sb.click("U0BOB", &ts, "approve").await;
    let s = sb
        .until("us-east-1 down, DNS not moved", Duration::from_secs(60), |s| {
            s["aws"]["regions"][0]["up"] == false
                && request_message(s).is_some_and(|m| m["replies"].to_string().contains("DNS is NOT moved"))
        })
        .await;
    // The truth: orders-west writes, the CNAMEs still name orders-east, and the run does not say done.
    assert_eq!(record(&s, "writer")["points_to"], "orders-east writer endpoint");
    assert_ne!(run_state(&s), Some("succeeded"));
    assert!(
        messages(&s)
            .iter()
            .any(|m| m["kind"] == "notice" && m["text"].as_str().unwrap().contains("took us-east-1 down"))
    );
    // us-east-1 back: Route 53 takes the change and the run completes.
    let (status, _) = sb
        .post(
            "control",
            json!({"control": "region", "region": "us-east-1", "up": true}),
        )
        .await;
    assert_eq!(status, 204);
    let s = sb
        .until("the run's end after us-east-1 is back", Duration::from_secs(120), |s| {
            run_state(s).is_some_and(|r| r != "running")
        })
        .await;
    assert_eq!(run_state(&s), Some("succeeded"), "{s:#}");
    assert_eq!(record(&s, "writer")["points_to"], "orders-west writer endpoint");

    // SIGTERM: a clean exit that leaves no temporary directory (both scenarios' stores) behind.
    let mut sb = sb;
    let dir = std::path::Path::new(&first_config)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    assert!(dir.exists());
    assert!(sb.terminate().await.success());
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
