//! Slack's message rules, as the stand-in applies them: what real Slack refuses is refused here with
//! Slack's error code (so that every test that sends a message also checks the limits), and what
//! Slack takes but reads badly (wording defects) is found in what was recorded, for the tests to
//! assert on.
//!
//! Refused, as Slack's Web API does (`ok: false` with the code) and as a response_url does (HTTP 400
//! with the code as the body): `no_text` (neither text nor blocks), `msg_too_long` (text over 40,000
//! characters), `invalid_blocks` (more than 50 blocks, a section's text empty or over 3,000
//! characters, a header's over 150 or not plain text, more than 10 context elements or 25 actions,
//! a button's text over 75 or its value over 2,000, an `action_id`/`block_id` over 255, a
//! confirmation dialog over its limits, any text object over 3,000), and `msg_blocks_too_long` (the
//! blocks' text over 12,000 characters in all, the cumulative limit Slack's staff give for it).
//! Lengths are counted in characters (Unicode scalar values).

use crate::{Recorded, SlackStandIn};
use serde_json::Value;

const MAX_TEXT: usize = 40_000;
const MAX_BLOCKS: usize = 50;
const MAX_BLOCKS_TEXT: usize = 12_000;
/// Slack takes 40,000, but a fallback text over 4,000 characters is no summary: a wording defect.
const MAX_FALLBACK: usize = 4_000;

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The error code Slack answers a message `body` with, if it refuses it.
pub fn refusal(body: &Value) -> Option<&'static str> {
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    let blocks = body
        .get("blocks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if text.trim().is_empty() && blocks.is_empty() {
        return Some("no_text");
    }
    if chars(text) > MAX_TEXT {
        return Some("msg_too_long");
    }
    if blocks.len() > MAX_BLOCKS || blocks.iter().any(|b| block_problem(b).is_some()) {
        return Some("invalid_blocks");
    }
    let total: usize = blocks.iter().map(text_len).sum();
    (total > MAX_BLOCKS_TEXT).then_some("msg_blocks_too_long")
}

/// Every `text` string in a block, counted.
fn text_len(v: &Value) -> usize {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if k == "text" => chars(s),
                other => text_len(other),
            })
            .sum(),
        Value::Array(a) => a.iter().map(text_len).sum(),
        _ => 0,
    }
}

fn over(v: &Value, pointer: &str, max: usize) -> bool {
    str_at(v, pointer).is_some_and(|s| chars(s) > max)
}

/// What is wrong with one block, if anything (for `invalid_blocks`).
pub fn block_problem(b: &Value) -> Option<String> {
    if over(b, "/block_id", 255) {
        return Some("block_id over 255 characters".into());
    }
    let elements = b.get("elements").and_then(Value::as_array).cloned().unwrap_or_default();
    match str_at(b, "/type").unwrap_or_default() {
        "section" => {
            let t = str_at(b, "/text/text");
            if b.get("fields").is_none() && t.is_none_or(|t| t.is_empty()) {
                return Some("a section with no text".into());
            }
            t.filter(|t| chars(t) > 3_000)
                .map(|t| format!("section text of {} characters", chars(t)))
        }
        "header" => (str_at(b, "/text/type") != Some("plain_text")
            || str_at(b, "/text/text").is_none_or(|t| t.is_empty() || chars(t) > 150))
        .then(|| "header text not plain text of 1 to 150 characters".into()),
        "context" => (elements.is_empty() || elements.len() > 10 || elements.iter().any(|e| over(e, "/text", 3_000)))
            .then(|| "context with 0 or more than 10 elements, or a text over 3,000".into()),
        "actions" => {
            if elements.is_empty() || elements.len() > 25 {
                return Some("actions with 0 or more than 25 elements".into());
            }
            elements.iter().find_map(element_problem)
        }
        "divider" | "image" | "rich_text" | "markdown" | "file" | "input" | "video" => None,
        other => Some(format!("unknown block type {other:?}")),
    }
}

fn element_problem(e: &Value) -> Option<String> {
    let checks = [
        ("/action_id", 255),
        ("/value", 2_000),
        ("/text/text", 75),
        ("/confirm/title/text", 100),
        ("/confirm/text/text", 300),
        ("/confirm/confirm/text", 30),
        ("/confirm/deny/text", 30),
    ];
    checks
        .iter()
        .find(|(p, max)| over(e, p, *max))
        .map(|(p, max)| format!("{p} over {max} characters"))
}

/// Every text a person reads in a message: the fallback text and each block's texts.
pub fn texts(body: &Value) -> Vec<String> {
    let mut out = vec![body.get("text").and_then(Value::as_str).unwrap_or_default().to_owned()];
    for b in body.get("blocks").and_then(Value::as_array).into_iter().flatten() {
        collect_texts(b, &mut out);
    }
    out
}

fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if k == "text" => out.push(s.clone()),
                    other => collect_texts(other, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_texts(v, out)),
        _ => {}
    }
}

/// `s` without its code spans (what is quoted there is shown as it is, not worded by the bot).
fn without_code(s: &str) -> String {
    s.split('`').step_by(2).collect::<Vec<_>>().join("`")
}

/// The wording defects of one text: two spaces inside a sentence, doubled punctuation.
pub fn text_defects(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let plain = without_code(text);
    for line in plain.lines() {
        if line.trim().contains("  ") {
            found.push(format!("two spaces in {line:?}"));
        }
        for doubled in ["..", ",,", ";;", ". .", ",.", ".,", ";.", ",;", ":.", "!.", "?."] {
            if line.contains(doubled) {
                found.push(format!("{doubled:?} in {line:?}"));
            }
        }
    }
    found
}

/// The wording defects of one message `body`: each text's, plus an empty or over-long fallback text,
/// or an empty section.
pub fn message_defects(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    if text.trim().is_empty() {
        found.push("empty fallback text".to_owned());
    }
    if chars(text) > MAX_FALLBACK {
        found.push(format!("a fallback text of {} characters", chars(text)));
    }
    for b in body.get("blocks").and_then(Value::as_array).into_iter().flatten() {
        if str_at(b, "/type") == Some("section") && str_at(b, "/text/text").is_none_or(|t| t.trim().is_empty()) {
            found.push("empty section".to_owned());
        }
    }
    for t in texts(body) {
        found.extend(text_defects(&t));
    }
    found
}

/// Whether a recorded call is a message the bot sent (a post, an update, an ephemeral message or a
/// response_url answer).
pub fn is_message(c: &Recorded) -> bool {
    matches!(
        c.method.as_str(),
        "chat.postMessage" | "chat.update" | "chat.postEphemeral" | "response"
    )
}

impl SlackStandIn {
    /// Every message the stand-in refused for breaking Slack's limits: the method, Slack's error code
    /// and the message.
    pub fn limit_refusals(&self) -> Vec<(String, String, Value)> {
        self.calls()
            .into_iter()
            .filter(is_message)
            .filter_map(|c| {
                let code = c.body.get("refused_for_limits")?.as_str()?.to_owned();
                Some((c.method.clone(), code, c.body.get("body").cloned().unwrap_or_default()))
            })
            .collect()
    }

    /// Every wording defect in the messages the stand-in accepted, each with the message's method and
    /// sequence number; and every message refused for Slack's limits.
    pub fn wording_defects(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .limit_refusals()
            .into_iter()
            .map(|(m, code, body)| format!("{m} refused with {code}: {body}"))
            .collect();
        for c in self.calls().iter().filter(|c| is_message(c) && c.status == 200) {
            if c.body.get("refused").is_some() || c.body.get("refused_for_limits").is_some() {
                continue;
            }
            for d in message_defects(&c.body) {
                found.push(format!("{} #{}: {d}", c.method, c.seq));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slack_refuses_oversize_sections_headers_and_messages() {
        let long = "x".repeat(3_001);
        assert_eq!(
            refusal(&json!({"text": "t", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": long}}]})),
            Some("invalid_blocks")
        );
        let header = json!({"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}});
        assert_eq!(
            refusal(&json!({"text": "t", "blocks": [header]})),
            Some("invalid_blocks")
        );
        assert_eq!(refusal(&json!({"text": ""})), Some("no_text"));
        assert_eq!(refusal(&json!({"text": "y".repeat(40_001)})), Some("msg_too_long"));
        let s = json!({"type": "section", "text": {"type": "mrkdwn", "text": "z".repeat(2_500)}});
        assert_eq!(
            refusal(&json!({"text": "t", "blocks": [s.clone(), s.clone(), s.clone(), s.clone(), s]})),
            Some("msg_blocks_too_long")
        );
        assert_eq!(refusal(&json!({"text": "fine"})), None);
    }

    #[test]
    fn wording_defects_are_found_and_an_ellipsis_or_code_is_not_one() {
        assert_eq!(text_defects("done now.. really").len(), 1);
        assert_eq!(text_defects("two  spaces").len(), 1);
        assert!(text_defects("an ellipsis… is fine, `a..b  c` is quoted").is_empty());
        assert!(text_defects("   indented line").is_empty());
        let body = json!({"text": " ", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]});
        assert_eq!(message_defects(&body), ["empty fallback text", "empty section"]);
    }
}
