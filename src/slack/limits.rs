//! Slack's limits on a message, enforced in one place for every message the bot sends (posts,
//! updates, thread replies, response_url answers, ephemeral answers): `render` builds its blocks with
//! [`sections`] and [`pages`], and [`fit`] is the last word on every message body (it runs again
//! in `MessageBody::content`, right before each Web API call).
//!
//! The numbers are Block Kit's reference (docs.slack.dev/reference/block-kit): a section's text at
//! most 3,000 characters (and at least 1), a header's 150, at most 50 blocks a message, 10 elements in
//! a context block, 25 in an actions block, a button's text 75 and its value 2,000, an `action_id` or
//! `block_id` 255, a confirmation dialog's title 100, text 300 and buttons 30. Slack truncates a
//! message's top-level `text` at 40,000 characters; the bot keeps it a short summary (at most
//! [`SUMMARY`] characters when blocks carry the content, never over [`TEXT_MAX`]). Slack also refuses
//! a message whose blocks hold too much text in all (`msg_blocks_too_long`, undocumented: about
//! 12,000 characters, a message of 11,341 was seen refused), so a message's blocks carry at most
//! [`BLOCKS_TEXT`] characters of text.
//!
//! Invariants: long content is split over several sections (and, by callers that can send several
//! messages, over several messages with [`pages`]), in order, losing nothing. Where truncation is the
//! right answer ([`truncate`]) the cut never falls inside an HTML entity (`&amp;`, `&lt;`, `&gt;`), a
//! `<...>` token (a mention, a channel, a link, a `<!date^...>`), a code span or a multi-byte
//! character, and the text says that it was truncated ([`TRUNCATED`]). Lengths are counted in UTF-16
//! code units, which is never fewer than Slack's characters.

use super::client::MessageBody;
use serde_json::{Value, json};

/// Most characters in a section block's text.
pub const SECTION_TEXT: usize = 3_000;
/// Most characters in a header block's text.
pub const HEADER_TEXT: usize = 150;
/// Most blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Most elements in a context block.
pub const CONTEXT_ELEMENTS: usize = 10;
/// Most elements in an actions block.
pub const ACTIONS_ELEMENTS: usize = 25;
/// Most characters in a button's text.
pub const BUTTON_TEXT: usize = 75;
/// Most characters in a button's value.
pub const BUTTON_VALUE: usize = 2_000;
/// Most characters in an `action_id` or a `block_id`.
pub const ID_LEN: usize = 255;
/// A confirmation dialog's title, text, and its two buttons' texts.
pub const CONFIRM_TITLE: usize = 100;
pub const CONFIRM_TEXT: usize = 300;
pub const CONFIRM_BUTTON: usize = 30;
/// The bot's own ceiling on a message's top-level `text` (Slack truncates at 40,000).
pub const TEXT_MAX: usize = 4_000;
/// How long the fallback `text` of a message with blocks is at most: a short summary (notifications
/// and screen readers show it).
pub const SUMMARY: usize = 500;
/// The bot's budget of text across all of a message's blocks, well below Slack's undocumented
/// cumulative limit (`msg_blocks_too_long`).
pub const BLOCKS_TEXT: usize = 9_000;
/// What ends a truncated text.
pub const TRUNCATED: &str = "… (truncated)";

/// The length Slack's limits are checked against: UTF-16 code units (an emoji outside the Basic
/// Multilingual Plane counts twice, as it does for Slack's JavaScript clients).
pub fn len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// For each byte offset of `s` that is a char boundary (`0..=s.len()`), whether cutting there keeps
/// every entity, `<...>` token and code span whole. Returned as the list of safe offsets, ascending.
fn safe_cuts(s: &str) -> Vec<usize> {
    let bytes = s.as_bytes();
    let mut safe = Vec::with_capacity(s.len() / 2);
    let (mut entity_end, mut in_angle, mut ticks) = (0usize, false, 0usize);
    for (i, c) in s.char_indices() {
        if i >= entity_end && !in_angle && ticks % 2 == 0 {
            safe.push(i);
        }
        match c {
            '&' if i >= entity_end => entity_end = entity_len(&bytes[i..]).map_or(0, |n| i + n),
            '<' if ticks % 2 == 0 => in_angle = true,
            '>' => in_angle = false,
            '`' if !in_angle => ticks += 1,
            _ => {}
        }
    }
    if entity_end <= s.len() && !in_angle && ticks % 2 == 0 {
        safe.push(s.len());
    }
    safe
}

/// The length in bytes of the HTML entity at the start of `b` (`&amp;`, `&#62;`...), if one is.
fn entity_len(b: &[u8]) -> Option<usize> {
    let end = b.iter().take(12).position(|&c| c == b';')?;
    (end >= 2 && b[1..end].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'#')).then_some(end + 1)
}

/// The byte offset of the longest prefix of `s` that is at most `max` long (in [`len`] units).
fn prefix_bytes(s: &str, max: usize) -> usize {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return i;
        }
    }
    s.len()
}

/// The best place to cut `s` within its first `max` units, among `cuts`: after a line if one ends in
/// the second half, else after a space there, else the last cut that fits. `None` when only 0 fits.
fn best_cut(s: &str, cuts: &[usize], max: usize) -> Option<usize> {
    let limit = prefix_bytes(s, max);
    let fitting: Vec<usize> = cuts.iter().copied().filter(|&c| c > 0 && c <= limit).collect();
    let half = limit / 2;
    let after = |ch: u8| {
        fitting
            .iter()
            .rev()
            .find(|&&c| c >= half && s.as_bytes()[c - 1] == ch)
            .copied()
    };
    after(b'\n').or_else(|| after(b' ')).or_else(|| fitting.last().copied())
}

/// `s` cut to at most `max` units at a safe place (never inside an entity, a `<...>` token, a code
/// span or a character), ending with [`TRUNCATED`]; `s` itself when it fits. `max` must exceed the
/// marker's length.
pub fn truncate(s: &str, max: usize) -> String {
    if len(s) <= max {
        return s.to_owned();
    }
    let room = max.saturating_sub(len(TRUNCATED));
    let cut = best_cut(s, &safe_cuts(s), room).unwrap_or(0);
    format!("{}{TRUNCATED}", s[..cut].trim_end())
}

/// `s` in consecutive parts of at most `max` units each, cut at safe places (preferably line ends);
/// the parts joined give `s` back. A part is cut inside a code span or token only when no safe place
/// fits at all (a code span longer than `max`).
pub fn split(s: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while len(rest) > max {
        let cut = best_cut(rest, &safe_cuts(rest), max)
            .or_else(|| {
                // No whole-token cut fits: keep entities and characters whole at least.
                let loose: Vec<usize> = rest
                    .char_indices()
                    .map(|(i, _)| i)
                    .filter(|&i| !inside_entity(rest, i))
                    .collect();
                best_cut(rest, &loose, max)
            })
            .unwrap_or_else(|| prefix_bytes(rest, max).max(rest.chars().next().map_or(1, char::len_utf8)));
        parts.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// Whether byte offset `i` of `s` falls inside an entity (after its `&`, up to its `;`).
fn inside_entity(s: &str, i: usize) -> bool {
    let b = s.as_bytes();
    (i.saturating_sub(11)..i).any(|start| b[start] == b'&' && entity_len(&b[start..]).is_some_and(|n| start + n > i))
}

/// A section block of mrkdwn text (at most [`SECTION_TEXT`]; see [`sections`] for longer text).
pub fn section(md: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": md}})
}

/// `md` as as many section blocks as it needs, in order, each within [`SECTION_TEXT`], split at line
/// ends where possible; nothing is lost. Blank text gives no block (Slack refuses an empty section).
pub fn sections(md: &str) -> Vec<Value> {
    split(md, SECTION_TEXT)
        .iter()
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .map(section)
        .collect()
}

/// The text Slack counts against [`BLOCKS_TEXT`] in one block: every `text` string in it.
pub fn block_text_len(block: &Value) -> usize {
    match block {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if k == "text" => len(s),
                other => block_text_len(other),
            })
            .sum(),
        Value::Array(a) => a.iter().map(block_text_len).sum(),
        _ => 0,
    }
}

/// Room [`pages`] leaves in each message for a block saying which part it is ([`PART_ROOM`]
/// characters of text).
pub const PART_ROOM: usize = 100;

/// Blocks packed into messages, in order: each message at most [`MAX_BLOCKS`] blocks and
/// [`BLOCKS_TEXT`] characters of text, less one block and [`PART_ROOM`] characters left for a part
/// marker. Each block must itself be within the limits ([`fit`]).
pub fn pages(blocks: Vec<Value>) -> Vec<Vec<Value>> {
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let (mut current, mut text) = (Vec::new(), 0);
    for b in blocks {
        let n = block_text_len(&b);
        if !current.is_empty() && (current.len() + 1 == MAX_BLOCKS || text + n > BLOCKS_TEXT - PART_ROOM) {
            pages.push(std::mem::take(&mut current));
            text = 0;
        }
        text += n;
        current.push(b);
    }
    if !current.is_empty() {
        pages.push(current);
    }
    pages
}

/// A message within every limit: each block fitted (long sections split, other texts and ids
/// truncated, lists capped), at most [`MAX_BLOCKS`] blocks and [`BLOCKS_TEXT`] of text (what does not
/// fit is said to be left out), and a short fallback `text`. A text-only message longer than a section
/// becomes sections with its first line as the summary. Idempotent.
pub fn fit(mut body: MessageBody) -> MessageBody {
    let (text, blocks) = (std::mem::take(&mut body.text), std::mem::take(&mut body.blocks));
    let (text, blocks) = if blocks.is_empty() && len(&text) > SECTION_TEXT {
        (summary(&text), sections(&text))
    } else if blocks.is_empty() {
        (truncate(&text, TEXT_MAX), blocks)
    } else {
        (summary(&text), blocks)
    };
    let mut fitted: Vec<Value> = blocks.into_iter().flat_map(fit_block).collect();
    let total: usize = fitted.iter().map(block_text_len).sum();
    if fitted.len() > MAX_BLOCKS || total > BLOCKS_TEXT {
        let note = context_block("… (truncated: the rest did not fit in one Slack message)");
        let mut kept = Vec::new();
        let mut used = block_text_len(&note);
        for b in fitted {
            used += block_text_len(&b);
            if kept.len() + 1 == MAX_BLOCKS || used > BLOCKS_TEXT {
                break;
            }
            kept.push(b);
        }
        kept.push(note);
        fitted = kept;
    }
    body.text = text;
    body.blocks = fitted;
    body
}

/// A fallback text: `text` itself when within [`SUMMARY`], else its first non-blank line, cut to fit.
pub fn summary(text: &str) -> String {
    if len(text) <= SUMMARY {
        return text.to_owned();
    }
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    truncate(first.trim(), SUMMARY)
}

/// A context block of mrkdwn text (at most [`SECTION_TEXT`]).
pub fn context_block(md: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": md}]})
}

/// Truncates the string at `v[key]`, if there is one, to `max`.
fn cap(v: &mut Value, key: &str, max: usize) {
    if let Some(Value::String(s)) = v.get_mut(key)
        && len(s) > max
    {
        *s = truncate(s, max);
    }
}

/// Truncates a value that is data, not text (ids, a button's value): cut at a character, no marker.
fn cap_raw(v: &mut Value, key: &str, max: usize) {
    if let Some(Value::String(s)) = v.get_mut(key)
        && len(s) > max
    {
        s.truncate(prefix_bytes(s, max));
    }
}

/// One block within its limits; a long section becomes several, an empty section, header or context
/// none.
fn fit_block(mut b: Value) -> Vec<Value> {
    cap_raw(&mut b, "block_id", ID_LEN);
    match b.get("type").and_then(Value::as_str).unwrap_or_default() {
        "section" => {
            let text = b.pointer("/text/text").and_then(Value::as_str).map(str::to_owned);
            match text {
                Some(t) if len(&t) > SECTION_TEXT || t.trim().is_empty() => {
                    let mut parts = sections(&t);
                    if let (Some(first), Some(id)) = (parts.first_mut(), b.get("block_id")) {
                        first["block_id"] = id.clone();
                    }
                    if let (Some(last), Some(acc)) = (parts.last_mut(), b.get("accessory")) {
                        last["accessory"] = acc.clone();
                    }
                    parts
                }
                _ => vec![b],
            }
        }
        "header" => {
            if let Some(t) = b.get_mut("text") {
                cap(t, "text", HEADER_TEXT);
            }
            // Slack refuses an empty header.
            let blank = b
                .pointer("/text/text")
                .and_then(Value::as_str)
                .is_none_or(|t| t.trim().is_empty());
            if blank { vec![] } else { vec![b] }
        }
        "context" => {
            if let Some(Value::Array(els)) = b.get_mut("elements") {
                els.retain(|e| {
                    e.get("text")
                        .and_then(Value::as_str)
                        .is_none_or(|t| !t.trim().is_empty())
                });
                els.truncate(CONTEXT_ELEMENTS);
                els.iter_mut().for_each(|e| cap(e, "text", SECTION_TEXT));
            }
            // Slack refuses a context block with no element.
            let empty = b.get("elements").and_then(Value::as_array).is_none_or(Vec::is_empty);
            if empty { vec![] } else { vec![b] }
        }
        "actions" => {
            if let Some(Value::Array(els)) = b.get_mut("elements") {
                els.truncate(ACTIONS_ELEMENTS);
                els.iter_mut().for_each(fit_element);
            }
            vec![b]
        }
        _ => vec![b],
    }
}

/// A button (or other element) within its limits, its confirmation dialog included.
fn fit_element(e: &mut Value) {
    cap_raw(e, "action_id", ID_LEN);
    cap_raw(e, "value", BUTTON_VALUE);
    if let Some(t) = e.get_mut("text") {
        cap(t, "text", BUTTON_TEXT);
    }
    if let Some(c) = e.get_mut("confirm") {
        for (key, max) in [
            ("title", CONFIRM_TITLE),
            ("text", CONFIRM_TEXT),
            ("confirm", CONFIRM_BUTTON),
            ("deny", CONFIRM_BUTTON),
        ] {
            if let Some(t) = c.get_mut(key) {
                cap(t, "text", max);
            }
        }
    }
}

#[cfg(test)]
mod tests;
