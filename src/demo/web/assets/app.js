// The sandbox page: a view of the state the sandbox pushes (server-sent events on /sandbox/events),
// and forms that post the user's actions to the sandbox's API, which signs them and sends them to the
// bot as Slack would. No build step, no dependencies.
"use strict";

const ui = {
  data: null,
  user: localStorage.getItem("sandbox-user") || "U0ALICE",
  thread: null, // the ts of the open thread's parent
  generation: null,
  modalKey: null, // which view the modal shows, so that typing survives updates
  confirmAction: null,
};

const $ = (sel) => document.querySelector(sel);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function userName(id) {
  const u = (ui.data?.users || []).find((x) => x.id === id);
  return u ? u.name : id;
}

// Slack's angle-bracket tokens: users, groups, special mentions, links.
function token(t) {
  const [target, label] = t.split("|", 2);
  if (target.startsWith("@")) return `<span class="mention">@${esc(label || userName(target.slice(1)))}</span>`;
  if (target.startsWith("!date^")) {
    // <!date^EPOCH^FORMAT|fallback>: the time in the reader's own time zone, as Slack shows it.
    const epoch = Number(target.split("^")[1]);
    return Number.isFinite(epoch) ? esc(new Date(epoch * 1000).toLocaleString()) : esc(label || "");
  }
  if (target.startsWith("!subteam^")) return `<span class="mention">${esc(label || "@" + (target.slice(9) === "S0DBA" ? "dba" : target.slice(9)))}</span>`;
  if (target.startsWith("!")) return `<span class="mention">@${esc(label || target.slice(1))}</span>`;
  if (target.startsWith("#")) {
    const name = target.slice(1) === ui.data?.channel?.id ? ui.data.channel.name : target.slice(1);
    return `<span class="mention">#${esc(label || name)}</span>`;
  }
  // A permalink to a message of this channel opens it here (its thread, if it has one).
  const link = /\/archives\/[A-Z0-9]+\/p(\d{10})(\d{6})$/.exec(target);
  if (link) return `<a class="permalink" data-ts="${link[1]}.${link[2]}">${esc(label || "message")}</a>`;
  if (/^(https?:|mailto:)/.test(target)) return `<a href="${esc(target)}" target="_blank" rel="noopener">${esc(label || target)}</a>`;
  return esc(`<${t}>`);
}

// The emoji shortcodes the bot uses, as Slack shows them.
const EMOJI = {
  warning: "⚠️", white_check_mark: "✅", hourglass_flowing_sand: "⏳", x: "❌", rotating_light: "🚨",
  no_entry: "⛔", tada: "🎉", arrow_forward: "▶️", octagonal_sign: "🛑", hourglass: "⌛",
  arrows_counterclockwise: "🔄", wastebasket: "🗑️", raised_hand: "✋", leftwards_arrow_with_hook: "↩️",
  information_source: "ℹ️", heavy_check_mark: "✔️", camera: "📷", shield: "🛡️", raising_hand: "🙋",
  grey_question: "❔", gear: "⚙️", eyes: "👀", double_vertical_bar: "⏸️", ballot_box_with_check: "☑️",
};

function inline(s) {
  // Escaped text: :emoji:, *bold*, _italic_, ~strike~ (each opens and closes at a word's edge).
  return s
    .replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] ?? m)
    .replace(/(^|[^\w*])\*([^*\n]+)\*(?![\w*])/g, "$1<b>$2</b>")
    .replace(/(^|[^\w])_([^_\n]+)_(?!\w)/g, "$1<i>$2</i>")
    .replace(/(^|[^\w~])~([^~\n]+)~(?![\w~])/g, "$1<s>$2</s>");
}

// Slack's own escapes in message text (&lt; &gt; &amp;): the characters they stand for.
function unescapeSlack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

// Slack mrkdwn to HTML: code blocks and spans first (nothing inside them is formatted), then the
// angle-bracket tokens (set aside, so that emphasis may span them), then Slack's escapes undone and the
// text escaped once for HTML, emphasis, quotes and line breaks.
function mrkdwn(text) {
  const out = [];
  const parts = String(text ?? "").split(/(```[\s\S]*?```|`[^`\n]+`)/);
  const tokens = [];
  for (const part of parts) {
    if (part.startsWith("```") && part.endsWith("```") && part.length >= 6) {
      out.push(`<pre>${esc(unescapeSlack(part.slice(3, -3)))}</pre>`);
    } else if (part.startsWith("`") && part.endsWith("`") && part.length >= 2) {
      out.push(`<code>${esc(unescapeSlack(part.slice(1, -1)))}</code>`);
    } else {
      const pieces = part.split(/<([^<>\n]+)>/);
      const marked = pieces.map((p, i) => {
        if (i % 2 === 0) return esc(unescapeSlack(p));
        tokens.push(token(unescapeSlack(p)));
        return `\u0000${tokens.length - 1}\u0000`;
      });
      out.push(inline(marked.join("")));
    }
  }
  return out
    .join("")
    .replace(/\u0000(\d+)\u0000/g, (_, n) => tokens[Number(n)])
    .split("\n")
    .map((line) => (line.startsWith("&gt; ") ? `<blockquote>${line.slice(5)}</blockquote>` : line))
    .join("<br>")
    .replace(/<\/blockquote><br><blockquote>/g, "<br>");
}

function textObject(t) {
  if (!t) return "";
  return t.type === "mrkdwn" ? mrkdwn(t.text) : esc(t.text).replace(/\n/g, "<br>");
}

function button(el, ctx, blockId) {
  const confirm = el.confirm ? esc(JSON.stringify(el.confirm)) : "";
  return `<button type="button" class="blk-button" data-action-id="${esc(el.action_id)}" data-value="${esc(el.value ?? "")}"` +
    ` data-block-id="${esc(blockId ?? "")}" data-ts="${esc(ctx.ts ?? "")}" data-style="${esc(el.style ?? "")}"` +
    (confirm ? ` data-confirm="${confirm}"` : "") + `>${esc(el.text?.text ?? el.action_id)}</button>`;
}

function block(b, ctx) {
  switch (b.type) {
    case "header":
      return `<div class="blk-header">${esc(b.text?.text)}</div>`;
    case "section": {
      const fields = (b.fields || []).map((f) => `<div>${textObject(f)}</div>`).join("");
      const accessory = b.accessory?.type === "button" ? " " + button(b.accessory, ctx, b.block_id) : "";
      return `<div class="blk-section">${textObject(b.text)}${accessory}${fields ? `<div class="blk-fields">${fields}</div>` : ""}</div>`;
    }
    case "context":
      return `<div class="blk-context">${(b.elements || []).map((e) => (e.type === "image" ? "" : textObject(e))).join(" · ")}</div>`;
    case "divider":
      return `<hr class="blk-divider">`;
    case "actions":
      return `<div class="blk-actions">${(b.elements || []).filter((e) => e.type === "button").map((e) => button(e, ctx, b.block_id)).join("")}</div>`;
    case "rich_text":
      return `<div class="blk-section">${esc(JSON.stringify(b.elements)).slice(0, 200)}</div>`;
    default:
      return `<div class="blk-unknown">[${esc(b.type)} block]</div>`;
  }
}

function body(m) {
  const blocks = Array.isArray(m.blocks) && m.blocks.length ? m.blocks : null;
  return `<div class="msg-text">${blocks ? blocks.map((b) => block(b, m)).join("") : mrkdwn(m.text)}</div>`;
}

function visible(m) {
  return m.to === null || m.to === undefined || m.to === ui.user;
}

function message(m, inThread) {
  const classes = ["msg"];
  if (m.to) classes.push("ephemeral");
  if (m.kind === "command") classes.push("command");
  if (m.kind === "notice") classes.push("notice");
  if (m.kind === "error") classes.push("error-line");
  if (inThread && m.kind === "reply") classes.push("reply");
  const only = m.to ? `<span class="only">${m.kind === "dm" ? "direct message" : "Only visible to you"}</span>` : "";
  const broadcast = m.kind === "broadcast" ? `<span class="only">replied to a thread</span>` : "";
  const edited = m.edited ? `<span class="edited">(edited)</span>` : "";
  const n = (m.replies || []).length;
  const replies = !inThread && n ? `<a class="replies" data-ts="${esc(m.ts)}">${n} ${n === 1 ? "reply" : "replies"}</a>` : "";
  const ts = m.ts ? ` data-ts="${esc(m.ts)}"` : "";
  return `<div class="${classes.join(" ")}"${ts} data-kind="${esc(m.kind)}">` +
    `<div class="meta"><b>${esc(m.author)}</b>${esc(m.time)}${only}${broadcast}</div>${body(m)}${edited}${replies}</div>`;
}

function keepScroll(el, html) {
  const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  if (el.innerHTML !== html) el.innerHTML = html;
  if (atBottom) el.scrollTop = el.scrollHeight;
}

function renderChannel() {
  const msgs = (ui.data.messages || []).filter(visible);
  keepScroll($("#channel"), msgs.map((m) => message(m, false)).join(""));
  const pane = $("#thread-pane");
  const parent = ui.thread && (ui.data.messages || []).find((m) => m.ts === ui.thread && m.kind !== "broadcast");
  if (!parent) {
    pane.hidden = true;
    return;
  }
  pane.hidden = false;
  const n = parent.replies.length;
  const html = message(parent, true) + `<div class="thread-sep">${n} ${n === 1 ? "reply" : "replies"}</div>` +
    parent.replies.map((r) => message(r, true)).join("");
  keepScroll($("#thread"), html);
}

function renderAws() {
  const a = ui.data.aws;
  const regions = a.regions.map((r) => `<span class="region" data-region="${esc(r.region)}" data-up="${r.up}">${esc(r.region)} ${r.up ? "up" : "DOWN"}</span>`).join("");
  const globals = a.global_clusters.map((g) => `<div><b>${esc(g.id)}</b> (${esc(g.status)}): ` +
    g.members.map((m) => `${esc(m.cluster)} in ${esc(m.region)} ${m.writer ? "<b>writer</b>" : "secondary" + (m.sync ? " " + esc(m.sync) : "")}`).join("; ") + `</div>`).join("");
  const clusters = a.clusters.map((c) => `<tr data-cluster="${esc(c.id)}"><td>${esc(c.id)}</td><td>${esc(c.region)}</td>` +
    `<td class="${c.status === "available" ? "status-available" : "status-other"}">${esc(c.status)}</td><td>${esc(c.global ?? "standalone")}</td><td>${c.lag_ms} ms</td></tr>`).join("");
  const records = a.records.map((r) => `<tr data-record="${esc(r.role)}"><td>${esc(r.role)} CNAME</td><td colspan="4">→ ${esc(r.points_to ?? r.value ?? "none")}</td></tr>`).join("");
  const faults = a.faults.length ? `<div class="error">Faults: ${a.faults.map((f) => `${esc(f.action)} ${esc(f.error ?? "")} ×${f.count ?? "∞"}`).join(", ")}</div>` : "";
  const calls = (a.calls || []).map((c) => `<tr class="aws-call" data-action="${esc(c.action)}"><td>${esc(c.at.slice(11, 19))}</td>` +
    `<td>${esc(c.region)}</td><td colspan="2">${esc(c.action)}</td><td class="${c.status === 200 ? "status-available" : "status-other"}">` +
    `${c.status === 200 ? "OK" : esc(c.error ?? (c.status === 0 ? "no answer" : "HTTP " + c.status))}</td></tr>`).join("");
  const callTable = calls ? `<div class="sub">API calls that change something, or failed (newest first)</div>` +
    `<table class="aws-table" id="aws-calls">${calls}</table>` : "";
  const html = `<div>${regions}</div>${globals}<table class="aws-table"><tr><th>cluster</th><th>Region</th><th>status</th><th>global</th><th>lag</th></tr>${clusters}${records}</table>${faults}${callTable}`;
  if ($("#aws").innerHTML !== html) $("#aws").innerHTML = html;
}

function renderRun() {
  const run = ui.data.run;
  $("#run-state").textContent = run?.state ?? "";
  $("#request-state").textContent = run ? `(request #${run.request_id} ${run.request_state})` : "(no request yet)";
  const t = ui.data.timeline || {};
  const steps = t.steps || [];
  const took = (e) => {
    if (e.kind !== "step") return "";
    const s = steps.find((s) => s.ended_at === e.at && `${s.step} ${s.outcome}` === e.what);
    return s ? `${(s.duration_ms / 1000).toFixed(1)} s` : "";
  };
  const rows = (t.entries || []).map((e) => `<tr class="tl-row" data-kind="${esc(e.kind)}" data-at="${esc(e.at)}" data-what="${esc(e.what)}">` +
    `<td>${esc(e.at.slice(11, 23))}</td><td>${esc(e.kind)}</td><td>${esc(e.user ? userName(e.user) : "")}</td><td>${esc(e.what)}</td><td>${esc(e.detail)}</td><td>${took(e)}</td></tr>`).join("");
  const tbody = $("#timeline tbody");
  if (tbody.innerHTML !== rows) tbody.innerHTML = rows;
  const ended = run?.state && run.state !== "running";
  $("#timeline-banner").textContent = ended ? `The run ended: ${run.state}. The timeline below is the audit trail.` : (t.error ?? "");
}

function renderModal() {
  const m = ui.data.modals?.[ui.user];
  const overlay = $("#modal");
  if (!m) {
    overlay.hidden = true;
    ui.modalKey = null;
    return;
  }
  const key = `${ui.user}:${m.view.id ?? ""}:${m.view.callback_id ?? ""}:${m.view.private_metadata ?? ""}`;
  if (ui.modalKey !== key) {
    ui.modalKey = key;
    $("#modal-title").textContent = m.view.title?.text ?? "";
    $("#modal-submit").textContent = m.view.submit?.text ?? "Submit";
    $("#modal-cancel").textContent = m.view.close?.text ?? "Cancel";
    $("#modal-body").innerHTML = (m.view.blocks || []).map((b) => {
      if (b.type !== "input") return block(b, {});
      const el = b.element || {};
      const attrs = `placeholder="${esc(el.placeholder?.text ?? "")}"` +
        (el.max_length ? ` maxlength="${Number(el.max_length)}"` : "");
      const field = el.multiline ? `<textarea rows="4" ${attrs}></textarea>` : `<input type="text" ${attrs}>`;
      return `<div class="modal-field" data-block-id="${esc(b.block_id)}"><label>${esc(b.label?.text)}</label>${field}` +
        `<div class="modal-error" data-error-for="${esc(b.block_id)}"></div>` +
        (b.hint ? `<div class="hint">${esc(b.hint.text)}</div>` : "") + `</div>`;
    }).join("");
  }
  for (const e of document.querySelectorAll("#modal [data-error-for]")) {
    e.textContent = m.errors?.[e.dataset.errorFor] ?? "";
  }
  overlay.hidden = false;
}

function renderOnce() {
  const users = $("#user");
  users.innerHTML = ui.data.users.map((u) => `<option value="${u.id}">${esc(u.name)}: ${esc(u.role)}</option>`).join("");
  users.value = ui.user;
  $("#scenario").innerHTML = ui.data.scenarios.map((s) => `<option value="${s.id}">${esc(s.title)}</option>`).join("");
  $("#throttle-action").innerHTML = ui.data.controls.throttle_actions.map((a) => `<option>${a}</option>`).join("");
  $("#cname-target").innerHTML = ui.data.controls.regions.map((r) => `<option>${r}</option>`).join("");
  $("#region-controls").innerHTML = ui.data.controls.regions.map((r) =>
    `<span>${r}</span><button type="button" id="region-down-${r}" data-region="${r}" data-up="false">down</button>` +
    `<button type="button" id="region-up-${r}" data-region="${r}" data-up="true">up</button>`).join(" ");
}

function render() {
  const d = ui.data;
  if (!d) return;
  if (!$("#user").options.length) renderOnce();
  if (ui.generation !== d.generation) {
    ui.generation = d.generation;
    ui.thread = null;
    $("#scenario").value = d.scenario?.id ?? "free";
    $("#scenario-start").disabled = false;
  }
  $("#scenario-title").textContent = d.scenario ? d.scenario.title + ":" : "";
  $("#scenario-goal").textContent = d.scenario?.goal ?? "";
  renderChannel();
  renderAws();
  renderRun();
  renderModal();
}

async function post(path, payload) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-sandbox": "1" },
    body: JSON.stringify(payload),
  });
  if (r.ok) return r.status === 204 ? {} : r.json();
  let why = `HTTP ${r.status}`;
  try { why = (await r.json()).error ?? why; } catch (_) { /* not JSON */ }
  throw new Error(why);
}

async function act(errorEl, path, payload) {
  errorEl.textContent = "";
  try {
    return await post(path, payload);
  } catch (e) {
    errorEl.textContent = e.message;
    return null;
  }
}

function clickButton(b) {
  const user = ui.user; // who clicked, whoever is selected when the dialog is answered
  const send = () => act($("#command-error"), "/sandbox/api/click", {
    user, ts: b.dataset.ts, block_id: b.dataset.blockId, action_id: b.dataset.actionId, value: b.dataset.value,
  });
  if (!b.dataset.confirm) return send();
  const c = JSON.parse(b.dataset.confirm);
  $("#confirm-title").textContent = c.title?.text ?? "Are you sure?";
  $("#confirm-text").innerHTML = textObject(c.text);
  $("#confirm-yes").textContent = c.confirm?.text ?? "Yes";
  $("#confirm-no").textContent = c.deny?.text ?? "Cancel";
  ui.confirmAction = send;
  $("#confirm").hidden = false;
}

function wire() {
  $("#user").addEventListener("change", (e) => {
    ui.user = e.target.value;
    localStorage.setItem("sandbox-user", ui.user);
    ui.modalKey = null;
    render();
  });
  $("#command-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("#command").value.trim();
    if (!text) return;
    const r = await act($("#command-error"), "/sandbox/api/command", { user: ui.user, text });
    if (r) $("#command").value = "";
  });
  for (const pane of ["#channel", "#thread"]) {
    $(pane).addEventListener("click", (e) => {
      const b = e.target.closest("button.blk-button");
      if (b) return clickButton(b);
      const a = e.target.closest("a.replies, a.permalink");
      if (a) {
        ui.thread = a.dataset.ts;
        render();
      }
    });
  }
  $("#thread-close").addEventListener("click", () => { ui.thread = null; render(); });
  $("#confirm-yes").addEventListener("click", () => { $("#confirm").hidden = true; ui.confirmAction?.(); ui.confirmAction = null; });
  $("#confirm-no").addEventListener("click", () => { $("#confirm").hidden = true; ui.confirmAction = null; });
  $("#modal-submit").addEventListener("click", () => {
    const values = {};
    for (const f of document.querySelectorAll("#modal .modal-field")) {
      values[f.dataset.blockId] = f.querySelector("textarea, input").value;
    }
    act($("#command-error"), "/sandbox/api/submit", { user: ui.user, values });
  });
  $("#modal-cancel").addEventListener("click", () => act($("#command-error"), "/sandbox/api/modal/close", { user: ui.user }));
  $("#scenario-start").addEventListener("click", async () => {
    $("#scenario-start").disabled = true;
    const r = await act($("#control-error"), "/sandbox/api/scenario", { id: $("#scenario").value });
    if (!r) $("#scenario-start").disabled = false;
  });
  const control = (payload) => act($("#control-error"), "/sandbox/api/control", payload);
  $("#region-controls").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-region]");
    if (b) control({ control: "region", region: b.dataset.region, up: b.dataset.up === "true" });
  });
  // A whole number of 0 or more from an input, or null (and the reason shown) when it is not one.
  const num = (id, what) => {
    const v = $(id).value.trim();
    if (/^\d+$/.test(v)) return Number(v);
    $("#control-error").textContent = `${what} must be a whole number, 0 or more (not "${v}")`;
    return null;
  };
  const numeric = (id, what, payload) => {
    const n = num(id, what);
    if (n !== null) control(payload(n));
  };
  $("#throttle").addEventListener("click", () => numeric("#throttle-count", "The number of calls to throttle",
    (count) => ({ control: "throttle", action: $("#throttle-action").value, count })));
  $("#lag").addEventListener("click", () => numeric("#lag-ms", "Replication lag (ms)", (ms) => ({ control: "lag", ms })));
  $("#promotion").addEventListener("click", () => numeric("#promotion-ms", "Promotion time (ms)", (ms) => ({ control: "promotion", ms })));
  $("#insync").addEventListener("click", () => numeric("#insync-ms", "The INSYNC delay (ms)", (ms) => ({ control: "insync", ms })));
  $("#cname").addEventListener("click", () => control({ control: "cname", record: $("#cname-record").value, region: $("#cname-target").value }));
  $("#clear-faults").addEventListener("click", () => control({ control: "clear-faults" }));
}

// The live state. The sandbox sends `state` when something changed and `ping` every few seconds; a
// stream that has said nothing for a while, or that the browser gave up on, is replaced by a new one.
const STALE_MS = 15000;
let events = null;
let heardAt = 0;

function connect() {
  events?.close();
  events = new EventSource("/sandbox/events");
  heardAt = Date.now();
  const status = $("#connection");
  const live = () => {
    heardAt = Date.now();
    status.dataset.live = "true";
    status.textContent = "live";
  };
  events.addEventListener("state", (e) => {
    live();
    ui.data = JSON.parse(e.data);
    render();
  });
  events.addEventListener("ping", live);
  events.onerror = () => {
    status.dataset.live = "false";
    status.textContent = "reconnecting…";
  };
}

setInterval(() => {
  if (events.readyState === EventSource.CLOSED || Date.now() - heardAt > STALE_MS) connect();
}, 2000);

wire();
connect();
