//! The limits' unit tests, and property tests over arbitrary text: multi-byte characters, entities,
//! backticks, angle brackets.

use super::*;
use proptest::prelude::*;

/// Text made of the pieces that are hard to cut: entities, mentions and dates, code spans, emoji and
/// other multi-byte characters, lines and spaces.
fn tricky() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("&amp;".to_owned()),
        Just("&lt;".to_owned()),
        Just("&gt;".to_owned()),
        Just("<@U0ALICE>".to_owned()),
        Just("<!date^1800000000^{date_short_pretty} {time}|2027-01-15 08:00 UTC>".to_owned()),
        Just("<https://example.com/a?b=c|a link>".to_owned()),
        Just("`code span`".to_owned()),
        Just("`".to_owned()),
        Just("<".to_owned()),
        Just("&".to_owned()),
        Just("\n".to_owned()),
        Just(" ".to_owned()),
        Just("é".to_owned()),
        Just("🎉".to_owned()),
        Just("日本語".to_owned()),
        "[a-z .,]{1,40}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..400).prop_map(|v| v.concat())
}

/// Whether `kept`, a prefix of `s`, ends with every entity, `<...>` token and code span whole.
fn whole_tokens(kept: &str, s: &str) -> bool {
    if let Some(a) = kept.rfind('&')
        && let Some(n) = entity_len(&s.as_bytes()[a..])
        && a + n > kept.len()
    {
        return false;
    }
    let (mut ticks, mut open) = (0, false);
    for c in kept.chars() {
        match c {
            '`' if !open => ticks += 1,
            '<' if ticks % 2 == 0 => open = true,
            '>' => open = false,
            _ => {}
        }
    }
    ticks % 2 == 0 && !open
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn truncation_fits_says_so_and_never_cuts_inside_a_token(s in tricky(), max in 20usize..3_000) {
        let t = truncate(&s, max);
        prop_assert!(len(&t) <= max, "{} > {max}", len(&t));
        if t != s {
            let kept = t.strip_suffix(TRUNCATED).expect("a cut text says it was cut");
            prop_assert!(s.starts_with(kept));
            prop_assert!(whole_tokens(kept, &s), "cut inside a token: {kept:?}");
        }
    }

    #[test]
    fn split_parts_fit_and_give_the_text_back(s in tricky(), max in 50usize..3_000) {
        let parts = split(&s, max);
        prop_assert_eq!(parts.concat(), s.clone());
        for p in &parts {
            prop_assert!(len(p) <= max);
        }
    }

    #[test]
    fn a_fitted_message_is_within_every_limit(s in tricky(), n in 0usize..80) {
        let blocks: Vec<Value> = (0..n).map(|i| if i % 3 == 0 { section(&s) } else { json!({
            "type": "header", "text": {"type": "plain_text", "text": s.clone()}}) }).collect();
        let body = fit(MessageBody { text: s.clone(), blocks });
        prop_assert!(body.blocks.len() <= MAX_BLOCKS);
        prop_assert!(body.blocks.iter().map(block_text_len).sum::<usize>() <= BLOCKS_TEXT);
        prop_assert!(len(&body.text) <= TEXT_MAX);
        if !body.blocks.is_empty() {
            prop_assert!(len(&body.text) <= SUMMARY);
        }
        for b in &body.blocks {
            let text = b.pointer("/text/text").and_then(Value::as_str).unwrap_or("x");
            let max = if b["type"] == "header" { HEADER_TEXT } else { SECTION_TEXT };
            prop_assert!(len(text) <= max && !text.trim().is_empty() || b["type"] == "context");
        }
        prop_assert_eq!(fit(body.clone()), body, "fit is idempotent");
    }
}

#[test]
fn a_cut_never_falls_inside_an_entity_a_mention_or_a_code_span() {
    let s = format!("{}&amp;<@U0ALICE> `a b c` end", "x ".repeat(10));
    for max in 14..s.len() {
        let t = truncate(&s, max);
        let kept = t.strip_suffix(TRUNCATED).unwrap_or(&t);
        assert!(!kept.ends_with('&') && !kept.ends_with("&am") && !kept.contains("<@U0AL") || kept.contains('>'));
        assert_eq!(kept.matches('`').count() % 2, 0, "{kept}");
    }
    assert_eq!(truncate("short", 20), "short");
}

#[test]
fn a_long_text_becomes_sections_in_order_split_at_line_ends() {
    let lines: Vec<String> = (0..200)
        .map(|i| format!("• check {i:03}: `detail` &amp; more"))
        .collect();
    let md = lines.join("\n");
    let blocks = sections(&md);
    assert!(blocks.len() >= 2);
    let texts: Vec<&str> = blocks.iter().map(|b| b["text"]["text"].as_str().unwrap()).collect();
    for t in &texts {
        assert!(len(t) <= SECTION_TEXT);
        assert!(t.starts_with("• check "), "split at a line end: {t:.40}");
    }
    assert_eq!(texts.join("\n"), md, "nothing lost, in order");
    assert!(sections("\n \n").is_empty(), "no empty section");
}

#[test]
fn fit_caps_headers_buttons_ids_and_the_block_count() {
    let button = json!({"type": "button", "action_id": "a".repeat(300), "value": "v".repeat(2_100),
        "text": {"type": "plain_text", "text": "b".repeat(80)},
        "confirm": {"title": {"type": "plain_text", "text": "t".repeat(120)},
                    "text": {"type": "mrkdwn", "text": "c".repeat(400)},
                    "confirm": {"type": "plain_text", "text": "y".repeat(40)},
                    "deny": {"type": "plain_text", "text": "n".repeat(40)}}});
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "h".repeat(200)}}),
        json!({"type": "actions", "block_id": "i".repeat(300), "elements": [button]}),
        json!({"type": "context", "elements": vec![json!({"type": "mrkdwn", "text": "e"}); 12]}),
    ];
    blocks.extend((0..60).map(|i| section(&format!("section {i}"))));
    let body = fit(MessageBody {
        text: "summary".into(),
        blocks,
    });
    assert_eq!(body.blocks.len(), MAX_BLOCKS);
    assert_eq!(len(body.blocks[0]["text"]["text"].as_str().unwrap()), HEADER_TEXT);
    let b = &body.blocks[1]["elements"][0];
    assert_eq!(len(b["action_id"].as_str().unwrap()), ID_LEN);
    assert_eq!(len(b["value"].as_str().unwrap()), BUTTON_VALUE);
    assert!(len(b["text"]["text"].as_str().unwrap()) <= BUTTON_TEXT);
    assert!(len(b["confirm"]["text"]["text"].as_str().unwrap()) <= CONFIRM_TEXT);
    assert_eq!(len(body.blocks[1]["block_id"].as_str().unwrap()), ID_LEN);
    assert_eq!(body.blocks[2]["elements"].as_array().unwrap().len(), CONTEXT_ELEMENTS);
    let last = body.blocks.last().unwrap()["elements"][0]["text"].as_str().unwrap();
    assert!(last.contains("truncated"), "says what was left out: {last}");
}

#[test]
fn empty_sections_headers_and_contexts_are_dropped_as_slack_refuses_them() {
    let body = fit(MessageBody {
        text: "t".into(),
        blocks: vec![
            section(" \n"),
            json!({"type": "header", "text": {"type": "plain_text", "text": ""}}),
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": " "}]}),
            section("kept"),
        ],
    });
    assert_eq!(body.blocks, [section("kept")]);
}

#[test]
fn a_long_text_only_message_becomes_sections_with_a_short_summary() {
    let text = format!("First line.\n{}", "word ".repeat(1_000));
    let body = fit(MessageBody {
        text: text.clone(),
        blocks: vec![],
    });
    assert_eq!(body.text, "First line.");
    let joined: Vec<&str> = body
        .blocks
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(joined.concat().replace(['\n', ' '], ""), text.replace(['\n', ' '], ""));
}

#[test]
fn pages_keep_order_and_each_page_within_blocks_and_text() {
    let blocks: Vec<Value> = (0..120).map(|i| section(&format!("{i} {}", "x".repeat(400)))).collect();
    let pages = pages(blocks.clone());
    assert!(pages.len() >= 5);
    for p in &pages {
        assert!(p.len() <= MAX_BLOCKS);
        assert!(p.iter().map(block_text_len).sum::<usize>() <= BLOCKS_TEXT);
    }
    assert_eq!(pages.concat(), blocks);
}

#[test]
fn lengths_count_utf16_units_so_emoji_count_twice() {
    assert_eq!(len("é"), 1);
    assert_eq!(len("🎉"), 2);
    let t = truncate(&"🎉".repeat(100), 21);
    assert!(len(&t) <= 21);
    assert!(t.starts_with("🎉🎉🎉🎉"));
}
