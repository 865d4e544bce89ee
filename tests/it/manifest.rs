//! `manifest.yml` (the Slack app manifest people create the app from) against the bot: the slash
//! command is `/aurora`, its usage hint names every subcommand and option the bot's own usage text
//! names, and its request URLs are routes the bot serves; `manifest.socket.yml` is the same app with
//! Socket Mode on and no request URLs. (That it lists exactly the scopes the bot
//! needs is checked next to those scopes: `slack::client`'s
//! `the_manifest_lists_every_scope_the_bot_calls_and_no_other`.)

use crate::common::*;
use std::collections::BTreeSet;
use yaml_rust2::{Yaml, YamlLoader};

fn manifest() -> Yaml {
    load(include_str!("../../manifest.yml"))
}

/// `manifest.socket.yml`, the Socket Mode variant.
fn socket_manifest() -> Yaml {
    load(include_str!("../../manifest.socket.yml"))
}

fn load(text: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(text).expect("a manifest is YAML");
    assert_eq!(docs.len(), 1, "a manifest holds one document");
    docs.remove(0)
}

/// The one slash command the manifest declares.
fn slash_command(manifest: &Yaml) -> &Yaml {
    let commands = manifest["features"]["slash_commands"]
        .as_vec()
        .expect("features.slash_commands is a list");
    assert_eq!(commands.len(), 1, "one slash command");
    &commands[0]
}

/// Each subcommand (`status`, `failover`, ...) and each option (`--to`, ...) in `text`: the first
/// word after each `/aurora ` and every word starting with `--`.
fn words(text: &str, command_prefix: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let word = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
    };
    let commands = text
        .split(command_prefix)
        .skip(1)
        .map(|rest| word(rest.trim_start()))
        .filter(|w| !w.is_empty())
        .collect();
    let options = text
        .split("--")
        .skip(1)
        .map(|rest| format!("--{}", word(rest)))
        .collect();
    (commands, options)
}

#[test]
fn the_manifests_slash_command_is_aurora_and_its_usage_hint_names_every_subcommand_and_option() {
    let manifest = manifest();
    let command = slash_command(&manifest);
    assert_eq!(command["command"].as_str(), Some("/aurora"));
    let hint = command["usage_hint"].as_str().expect("a usage hint");
    // The hint is the text after `/aurora`, alternatives separated by `|`.
    let (hint_commands, hint_options) = words(&format!("| {hint}"), "| ");
    let (usage_commands, usage_options) = words(aurora_failover_bot::slack::render::usage(), "/aurora ");
    assert_eq!(
        hint_commands, usage_commands,
        "manifest.yml's usage hint and the bot's usage text name different subcommands"
    );
    assert_eq!(
        hint_options, usage_options,
        "manifest.yml's usage hint and the bot's usage text name different options"
    );
    // Slack cuts a usage hint longer than this.
    assert!(hint.chars().count() <= 1000, "usage hint too long");
}

#[tokio::test]
async fn the_manifests_request_urls_are_routes_the_bot_serves() {
    let manifest = manifest();
    let urls = [
        slash_command(&manifest)["url"].as_str().expect("the command's url"),
        manifest["settings"]["interactivity"]["request_url"]
            .as_str()
            .expect("settings.interactivity.request_url"),
    ];
    assert_eq!(
        manifest["settings"]["interactivity"]["is_enabled"].as_bool(),
        Some(true),
        "the Approve and Deny buttons need interactivity"
    );
    let paths: Vec<String> = urls
        .iter()
        .map(|u| reqwest::Url::parse(u).expect("an absolute URL").path().to_owned())
        .collect();
    assert_eq!(paths, ["/slack/commands", "/slack/interactions"]);
    let bot = TestBot::start().await;
    let http = reqwest::Client::new();
    for path in &paths {
        let response = http
            .post(format!("http://127.0.0.1:{}{path}", bot.port))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("text=status")
            .send()
            .await
            .unwrap();
        // Served, and refused because it is not signed (not 404, not 405).
        assert_eq!(response.status(), 401, "POST {path}");
    }
}

#[tokio::test]
async fn the_socket_mode_manifest_is_the_http_one_with_socket_mode_on_and_no_request_urls() {
    let socket = socket_manifest();
    let http = manifest();
    assert_eq!(socket["settings"]["socket_mode_enabled"].as_bool(), Some(true));
    assert_eq!(http["settings"]["socket_mode_enabled"].as_bool(), Some(false));
    assert!(
        slash_command(&socket)["url"].is_badvalue(),
        "no request URL in Socket Mode"
    );
    assert!(socket["settings"]["interactivity"]["request_url"].is_badvalue());
    assert_eq!(socket["settings"]["interactivity"]["is_enabled"].as_bool(), Some(true));
    // The same command, usage hint, scopes and everything else.
    let without_urls = |mut m: Yaml| {
        remove(&mut m["settings"], "socket_mode_enabled");
        remove(&mut m["settings"]["interactivity"], "request_url");
        remove(&mut m["features"]["slash_commands"][0], "url");
        m
    };
    assert_eq!(without_urls(socket), without_urls(http));
    // The bot in Socket Mode serves no Slack route.
    let bot = TestBot::start_with(Options {
        socket: true,
        ..Options::default()
    })
    .await;
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/slack/interactions", bot.port))
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// Removes `key` from a mapping.
fn remove(m: &mut Yaml, key: &str) {
    if let Yaml::Hash(h) = m {
        h.remove(&Yaml::String(key.into()));
    }
}
