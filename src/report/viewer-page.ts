/**
 * The trace viewer's page: one HTML document with inline CSS and JavaScript, nothing loaded from elsewhere.
 * It asks the viewer's server (viewer.ts) for /api/info, then either /api/trace?i=N (file mode, with a
 * selector when the file holds several responses) or the /api/live event stream (live mode), and renders:
 * numbers, the KV chart (an SVG built by the server), and one `<details>` per block with its memento in the
 * always-visible summary line.
 *
 * Under the title, #setup says which architecture and tokenizer the numbers use and why (a flag, the run's
 * run.json, or the default); #tokcheck warns when the tokenizer's count differs from the run's recorded one.
 *
 * Elements tests rely on: #status[data-state] ("loading" | "ready" | "streaming" | "done" | "error"),
 * #chart svg, #blocks > details.block (one per block), #answer, #item (the selector), #setup, #tokcheck.
 */

const CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f9fafb;margin:0;padding:18px 28px 40px;max-width:1200px}
h1{font-size:19px;margin:0 8px 0 0;display:inline-block}
header{display:flex;flex-wrap:wrap;align-items:center;gap:8px;margin-bottom:8px}
#status{font-size:12px;padding:2px 8px;border-radius:10px;background:#e5e7eb;color:#374151}
#status[data-state=streaming]{background:#dbeafe;color:#1d4ed8}
#status[data-state=done],#status[data-state=ready]{background:#dcfce7;color:#166534}
#status[data-state=error]{background:#fee2e2;color:#991b1b}
select{font:inherit;max-width:100%;padding:3px}
button{font:inherit;font-size:12px;padding:2px 8px;border:1px solid #d1d5db;background:#fff;border-radius:4px;cursor:pointer}
.panel{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px;margin:10px 0}
#chart svg{max-width:100%;height:auto;display:block}
#stats{display:flex;flex-wrap:wrap;gap:6px 22px;font-variant-numeric:tabular-nums}
#stats div span{color:#6b7280;font-size:12px;display:block}
#stats div b{font-size:15px}
#prompt{white-space:pre-wrap;color:#374151;max-height:8em;overflow:auto}
details.block{background:#fff;border:1px solid #e5e7eb;border-left:4px solid #2563eb;border-radius:6px;margin:8px 0;padding:6px 10px}
details.block.open-block{border-left-color:#f59e0b}
details.block>summary{cursor:pointer;list-style-position:outside}
.bhead{font-weight:600}
.tok{color:#6b7280;font-size:12px;font-variant-numeric:tabular-nums;margin-left:6px}
.memento{margin:4px 0 2px 0;padding:6px 8px;background:#eff6ff;border-radius:4px;white-space:pre-wrap;font-size:13px;color:#1e3a8a}
.memento.none{background:#fef3c7;color:#92400e}
pre{white-space:pre-wrap;word-wrap:break-word;font:12.5px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin:8px 0 2px;color:#1f2937}
#answer pre,#preamble pre{margin:0}
.orphan{background:#fef3c7;border:1px solid #fcd34d;border-radius:6px;padding:6px 10px;margin:8px 0}
#tail{max-height:10em;overflow:auto;color:#4b5563}
.muted{color:#6b7280;font-size:12px}
.hidden{display:none}
`;

const SCRIPT = String.raw`
(function () {
  "use strict";
  var state = { mode: "file", text: "", live: null, source: null };
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmt(n) {
    if (n === null || n === undefined || !isFinite(n)) return "–";
    if (Math.abs(n) >= 10000) return (n / 1000).toFixed(1) + "k";
    if (Number.isInteger(n)) return String(n);
    return n.toFixed(2);
  }
  function setStatus(s, msg) {
    var st = $("status");
    st.setAttribute("data-state", s);
    st.textContent = msg || s;
  }
  function stat(label, value) {
    var d = el("div");
    d.appendChild(el("span", null, label));
    d.appendChild(el("b", null, value));
    return d;
  }

  function renderStats(t) {
    var s = $("stats");
    s.textContent = "";
    var withMem = t.blocks.filter(function (b) { return b.memento; });
    var bt = withMem.reduce(function (a, b) { return a + b.tokens; }, 0);
    var mt = withMem.reduce(function (a, b) { return a + b.memento.tokens; }, 0);
    s.appendChild(stat("blocks", String(t.blocks.length)));
    s.appendChild(stat("output tokens", fmt(t.outputTokens)));
    s.appendChild(stat("prompt tokens", fmt(t.promptTokens)));
    s.appendChild(stat("compression", bt > 0 ? (mt / bt).toFixed(3) : "–"));
    s.appendChild(stat("peak KV memento / full", fmt(t.kv.memento.peakTokens) + " / " + fmt(t.kv.vanilla.peakTokens)));
    s.appendChild(stat("peak ×", t.kv.peakReduction.toFixed(2) + "×"));
    s.appendChild(stat("AUC ×", t.kv.aucReduction.toFixed(2) + "×"));
    s.appendChild(stat("peak GB (" + t.architecture + ")", t.kv.memento.peakGB.toFixed(3) + " / " + t.kv.vanilla.peakGB.toFixed(3)));
    s.appendChild(stat("evictions", String(t.kv.evictions)));
    var check = $("tokcheck");
    var differs = t.recordedOutputTokens !== null && t.recordedOutputTokens !== t.outputTokens;
    check.textContent = differs
      ? "the run recorded " + t.recordedOutputTokens + " output tokens for this response; this tokenizer counts " +
        t.outputTokens + ": it is probably not the run's tokenizer (pass -t)"
      : "";
    check.classList.toggle("hidden", !differs);
  }

  function renderBlocks(t) {
    var box = $("blocks");
    var wasOpen = {};
    var known = {};
    Array.prototype.forEach.call(box.querySelectorAll("details.block"), function (d) {
      known[d.getAttribute("data-index")] = true;
      if (d.open) wasOpen[d.getAttribute("data-index")] = true;
    });
    box.textContent = "";
    if (t.preamble && t.preamble.trim()) {
      var p = el("div", "panel");
      p.id = "preamble";
      p.appendChild(el("div", "muted", "before the thinking section"));
      p.appendChild(el("pre", null, t.preamble));
      box.appendChild(p);
    }
    t.blocks.forEach(function (b) {
      var d = el("details", "block" + (b.closed ? "" : " open-block"));
      d.setAttribute("data-index", String(b.index));
      if (b.depth > 0) d.style.marginLeft = (b.depth * 24) + "px";
      var key = String(b.index);
      if (wasOpen[key] || (!known[key] && state.mode === "live" && !b.closed)) d.open = true;
      var sum = el("summary");
      sum.appendChild(el("span", "bhead", "Block " + (b.index + 1) + (b.closed ? "" : " (open)")));
      var info = b.tokens + " tok";
      if (b.memento) info += " → memento " + b.memento.tokens + " tok" + (b.compression !== null ? " (" + b.compression.toFixed(2) + ")" : "");
      sum.appendChild(el("span", "tok", info));
      if (b.memento) sum.appendChild(el("div", "memento", b.memento.text.trim() || "(empty memento)"));
      else if (b.closed) sum.appendChild(el("div", "memento none", "no memento"));
      d.appendChild(sum);
      d.appendChild(el("pre", "block-text", b.text));
      box.appendChild(d);
    });
    t.orphanMementos.forEach(function (m) {
      var o = el("div", "orphan");
      o.appendChild(el("div", "muted", "memento attached to no block · " + m.tokens + " tok"));
      o.appendChild(el("div", null, m.text));
      box.appendChild(o);
    });
    var a = $("answer");
    a.textContent = "";
    if (t.answer !== null) {
      a.classList.remove("hidden");
      a.appendChild(el("div", "muted", "answer · " + t.answerTokens + " tok"));
      a.appendChild(el("pre", null, t.answer.trim()));
    } else a.classList.add("hidden");
  }

  function render(t) {
    renderStats(t);
    $("chart").innerHTML = t.chart;
    renderBlocks(t);
  }

  function loadItem(i) {
    setStatus("loading", "loading…");
    return fetch("/api/trace?i=" + i).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
        return j;
      });
    }).then(function (t) {
      render(t);
      setStatus("ready", t.blocks.length + " blocks");
    }).catch(function (e) {
      setStatus("error", "error: " + e.message);
      console.error(e);
    });
  }

  function startLive(info) {
    $("live").classList.remove("hidden");
    $("prompt").textContent = info.live.prompt;
    $("endpoint").textContent = info.live.endpoint + (info.live.model ? " · " + info.live.model : "");
    setStatus("streaming", "waiting for tokens…");
    var es = new EventSource("/api/live");
    state.source = es;
    es.addEventListener("text", function (ev) {
      state.text = JSON.parse(ev.data).text;
      $("tail").textContent = state.text.slice(-600);
    });
    es.addEventListener("delta", function (ev) {
      state.text += JSON.parse(ev.data).text;
      $("tail").textContent = state.text.slice(-600);
      setStatus("streaming", "streaming… " + state.text.length + " chars");
    });
    es.addEventListener("trace", function (ev) {
      render(JSON.parse(ev.data));
    });
    es.addEventListener("done", function (ev) {
      var d = JSON.parse(ev.data);
      es.close();
      if (d.model) $("endpoint").textContent = info.live.endpoint + " · " + d.model;
      if (d.error) setStatus("error", "error: " + d.error);
      else setStatus("done", "done" + (d.finishReason ? " (" + d.finishReason + ")" : "") + " · " + state.text.length + " chars");
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) setStatus("error", "connection to the viewer lost");
    };
  }

  function init() {
    $("expand").onclick = function () { Array.prototype.forEach.call(document.querySelectorAll("details.block"), function (d) { d.open = true; }); };
    $("collapse").onclick = function () { Array.prototype.forEach.call(document.querySelectorAll("details.block"), function (d) { d.open = false; }); };
    fetch("/api/info").then(function (r) { return r.json(); }).then(function (info) {
      state.mode = info.mode;
      $("title").textContent = info.title;
      document.title = "memento view: " + info.title;
      if (info.setup) {
        $("setup").textContent = "KV bytes: " + info.architecture + " (" + info.setup.architecture.why + ") · tokenizer: " +
          info.setup.tokenizer.why;
        $("setup").setAttribute("data-architecture-origin", info.setup.architecture.origin);
        $("setup").setAttribute("data-tokenizer-origin", info.setup.tokenizer.origin);
      }
      if (info.mode === "live") return startLive(info);
      var sel = $("item");
      if (info.items.length > 1) {
        info.items.forEach(function (it) {
          var o = el("option", null, it.label);
          o.value = String(it.index);
          sel.appendChild(o);
        });
        sel.classList.remove("hidden");
        sel.onchange = function () { loadItem(Number(sel.value)); };
      }
      var m = /[?&]i=(\d+)/.exec(location.search);
      var first = m ? Number(m[1]) : 0;
      if (info.items.length > 1) sel.value = String(first);
      return loadItem(first);
    }).catch(function (e) {
      setStatus("error", "error: " + e.message);
      console.error(e);
    });
  }
  init();
})();
`;

/** The page HTML. */
export function viewerPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>memento view</title><style>${CSS}</style></head>
<body>
<header><h1 id="title">memento view</h1><span id="status" data-state="loading">loading…</span>
<select id="item" class="hidden" aria-label="response"></select>
<button id="expand" type="button">expand all</button><button id="collapse" type="button">collapse all</button></header>
<div id="setup" class="muted"></div><div id="tokcheck" class="orphan hidden"></div>
<section id="live" class="panel hidden"><div class="muted">live from <span id="endpoint"></span></div><div id="prompt"></div>
<details><summary class="muted">latest text</summary><pre id="tail"></pre></details></section>
<section class="panel"><div id="stats"></div></section>
<section class="panel" id="chart"></section>
<section id="blocks"></section>
<section id="answer" class="panel hidden"></section>
<script>${SCRIPT}</script>
</body></html>
`;
}
