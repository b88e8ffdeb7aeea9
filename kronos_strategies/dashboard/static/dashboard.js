// kronos-bt dashboard: pages fetch the read-only JSON API and draw with the locally served plotly.js.
// Data is put into the page with textContent only, never as HTML.
"use strict";
const KB = (() => {
  const $ = (id) => document.getElementById(id);
  const refreshMs = () => Number(document.body.dataset.refreshMs || 2000);
  const getJSON = async (url) => {
    const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  };
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(2) + "%");
  const num = (x, d = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  const time = (ms) => (ms === null || ms === undefined ? "–" : new Date(ms).toISOString().replace(".000Z", "Z"));
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const link = (href, text) => { const a = el("a", text); a.href = href; return a; };
  const runUrl = (id) => "/run/" + id.split("/").map(encodeURIComponent).join("/");
  const apiPath = (prefix, id) => prefix + id.split("/").map(encodeURIComponent).join("/");
  const showError = (err) => { const box = $("error"); if (box) box.textContent = String(err.message || err); };
  const layout = (extra) => Object.assign({ margin: { l: 55, r: 10, t: 10, b: 35 }, hovermode: "x unified",
    legend: { orientation: "h" } }, extra || {});
  const plot = (id, traces, extra) => Plotly.react($(id), traces, layout(extra), { responsive: true, displaylogo: false });

  // A table from rows and [header, (row) => cell text, className] columns.
  function fillTable(table, rows, columns) {
    table.replaceChildren();
    const head = el("tr");
    columns.forEach(([h, , cls]) => head.appendChild(el("th", h, cls)));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    if (!rows.length) { const td = body.appendChild(el("tr")).appendChild(el("td", "none")); td.colSpan = columns.length; }
    rows.forEach((row) => {
      const tr = body.appendChild(el("tr"));
      columns.forEach(([, get, cls]) => tr.appendChild(el("td", get(row), cls)));
    });
  }

  // --- runs table ------------------------------------------------------------------------------------
  const RUN_CELLS = [["name"], ["kind"], ["asset"], ["start"], ["end"], ["sharpe", (x) => num(x), "num"],
    ["cagr", pct, "num"], ["max_drawdown", pct, "num"], ["trades", (x) => (x === null ? "–" : x), "num"],
    ["model"], ["created", (x) => (x ? String(x).slice(0, 19).replace("T", " ") : "–")]];

  async function runsPage() {
    const table = $("runs");
    let rows = [], key = "created", desc = true;
    const render = () => {
      const body = table.tBodies[0];
      body.replaceChildren();
      const sorted = rows.slice().sort((a, b) => {
        const x = a[key], y = b[key];
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * (desc ? -1 : 1);
      });
      sorted.forEach((row) => {
        const tr = body.appendChild(el("tr", null, row.error ? "error-row" : ""));
        tr.dataset.id = row.id;
        const box = el("input"); box.type = "checkbox"; box.value = row.id; box.className = "pick";
        tr.appendChild(el("td")).appendChild(box);
        RUN_CELLS.forEach(([k, fmt, cls]) => {
          const td = tr.appendChild(el("td", null, cls));
          td.dataset.key = k;
          if (k === "name") td.appendChild(link(runUrl(row.id), row.name)).title = row.folder;
          else td.textContent = fmt ? fmt(row[k]) : (row[k] ?? "–");
        });
        if (row.error) { const td = body.appendChild(el("tr", null, "error-row")).appendChild(el("td", "⚠ " + row.folder + ": " + row.error)); td.colSpan = 12; }
      });
      if (!rows.length) { const td = body.appendChild(el("tr")).appendChild(el("td", "no runs found under the given folders")); td.colSpan = 12; }
    };
    table.tHead.addEventListener("click", (ev) => {
      const k = ev.target.dataset && ev.target.dataset.key;
      if (!k) return;
      desc = k === key ? !desc : false; key = k; render();
    });
    table.addEventListener("change", () => { $("compare").disabled = table.querySelectorAll("input.pick:checked").length < 2; });
    $("compare").addEventListener("click", () => {
      const ids = [...table.querySelectorAll("input.pick:checked")].map((b) => "run=" + encodeURIComponent(b.value));
      window.location.href = "/compare?" + ids.join("&");
    });
    try { rows = (await getJSON("/api/runs")).runs; render(); } catch (err) { table.tBodies[0].textContent = String(err); }
  }

  // --- one run ---------------------------------------------------------------------------------------
  const METRICS = [["total_return", pct], ["cagr", pct], ["sharpe", num], ["sortino", num], ["max_drawdown", pct],
    ["volatility", pct], ["exposure", pct], ["turnover", num], ["trades", (x) => num(x, 0)], ["hit_rate", pct], ["bars", (x) => num(x, 0)]];

  async function runPage(runId) {
    let detail;
    try { detail = await getJSON(apiPath("/api/run/", runId)); } catch (err) { showError(err); return; }
    const s = detail.summary;
    $("title").textContent = `${s.name} · ${s.kind} · ${s.asset || ""} ${s.start || ""} – ${s.end || ""}`;
    if (s.error) showError(s.error);
    const links = $("links");
    s.files.filter((f) => /\.(html|png|csv|md)$/.test(f)).forEach((f) => {
      links.appendChild(link(apiPath("/files/" + encodeURIComponent(f) + "/", runId), f)); links.append(" ");
    });
    const m = detail.metrics || {};
    const strat = m.strategy || {}, bench = m.benchmark || {};
    fillTable($("metrics"), METRICS.filter(([k]) => k in strat),
      [["metric", ([k]) => k], ["strategy", ([k, f]) => f(strat[k]), "num"], ["benchmark", ([k, f]) => f(bench[k]), "num"]]);
    $("manifest").textContent = JSON.stringify(detail.manifest || {}, null, 2);
    const extra = $("extra");
    if (detail.walkforward) extra.appendChild(el("pre", JSON.stringify(detail.walkforward.pooled || detail.walkforward, null, 2)));
    if (detail.sweep_results && detail.sweep_results.length) {
      const table = extra.appendChild(el("table", null, "grid"));
      table.id = "sweep-results";
      const cols = Object.keys(detail.sweep_results[0]);
      fillTable(table, detail.sweep_results, cols.map((c) => [c, (r) => (typeof r[c] === "number" && !Number.isInteger(r[c]) ? num(r[c], 4) : r[c] ?? "–"), typeof detail.sweep_results[0][c] === "number" ? "num" : ""]));
    }
    if (detail.sweep) extra.appendChild(el("pre", JSON.stringify(detail.sweep, null, 2)));
    s.files.filter((f) => /^(walkforward_skill|heatmap)\.png$/.test(f)).forEach((f) => {
      const img = extra.appendChild(el("img"));
      img.src = apiPath("/files/" + encodeURIComponent(f) + "/", runId);
      img.alt = f;
      img.style.maxWidth = "900px";
    });
    if (!extra.childNodes.length) extra.textContent = "–";
    let ser;
    try { ser = await getJSON(apiPath("/api/series/", runId)); } catch (err) { showError(err); return; }
    $("notes").textContent = (ser.notes || []).join("; ");
    if (ser.equity) {
      plot("equity", [{ x: ser.equity.time, y: ser.equity.strategy, name: "strategy", type: "scatter" },
        { x: ser.equity.time, y: ser.equity.benchmark, name: "benchmark", type: "scatter", line: { color: "#999" } }],
        { yaxis: { title: "growth of 1" } });
      plot("drawdown", [{ x: ser.equity.time, y: ser.equity.drawdown, name: "drawdown", fill: "tozeroy", line: { color: "#c44" } }],
        { yaxis: { tickformat: ".0%" } });
    }
    const traces = [];
    if (ser.band) {
      traces.push({ x: ser.band.time, y: ser.band.lower, name: "band lower", line: { width: 0 }, showlegend: false });
      traces.push({ x: ser.band.time, y: ser.band.upper, name: `forecast band (made ${ser.band.horizon ?? "?"} bars earlier: drawn at the bar it forecasts)`,
        fill: "tonexty", line: { width: 0 }, fillcolor: "rgba(31,119,180,0.25)" });
      const h = ser.band.horizon || 0;  // shift the band forward to the bar it describes
      if (h > 0) { [traces[0], traces[1]].forEach((t) => { t.x = t.x.slice(h); t.y = t.y.slice(0, t.y.length - h); }); }
    }
    if (ser.close) traces.push({ x: ser.close.time, y: ser.close.value, name: "close", line: { color: "#000", width: 1 } });
    if (ser.trades) {
      ["buy", "sell"].forEach((side) => {
        const idx = ser.trades.side.map((v, i) => (v === side ? i : -1)).filter((i) => i >= 0);
        traces.push({ x: idx.map((i) => ser.trades.time[i]), y: idx.map((i) => ser.trades.price[i]), name: side, mode: "markers",
          marker: { symbol: side === "buy" ? "triangle-up" : "triangle-down", size: 9, color: side === "buy" ? "#2a2" : "#d22" } });
      });
    }
    const span = ser.close ? [ser.close.time[0], ser.close.time[ser.close.time.length - 1]] : undefined;
    if (traces.length) plot("price", traces, { xaxis: { range: span, rangeslider: { visible: true } } });
  }

  // --- compare ---------------------------------------------------------------------------------------
  async function comparePage() {
    let data;
    try { data = await getJSON("/api/compare" + window.location.search); } catch (err) { showError(err); return; }
    const traces = data.runs.filter((r) => r.equity).map((r) => ({ x: r.equity.time, y: r.equity.strategy, name: `${r.name} (${r.id})` }));
    plot("equity", traces, { yaxis: { title: "growth of 1" } });
    fillTable($("compare"), data.runs, [["run", (r) => r.id], ["name", (r) => r.name], ["asset", (r) => r.asset ?? "–"],
      ["sharpe", (r) => num(r.sharpe), "num"], ["CAGR", (r) => pct(r.cagr), "num"], ["max DD", (r) => pct(r.max_drawdown), "num"],
      ["trades", (r) => r.trades ?? "–", "num"], ["equity", (r) => (r.equity ? "shown" : r.error || "not available")]]);
  }

  // --- paper sessions --------------------------------------------------------------------------------
  async function sessionsPage() {
    const body = $("sessions").tBodies[0];
    const tick = async () => {
      try {
        const data = await getJSON("/api/sessions");
        body.replaceChildren();
        data.sessions.forEach((s) => {
          const tr = body.appendChild(el("tr", null, s.error ? "error-row" : ""));
          tr.appendChild(el("td")).appendChild(link("/session/" + s.number, s.name));
          [s.symbol ?? "–", s.mode ?? "–", s.error ? `${s.status}: ${s.error}` : s.status,
            time(s.last_bar && s.last_bar.bar_ts), s.fills ?? "–"].forEach((v) => tr.appendChild(el("td", v)));
        });
      } catch (err) { body.textContent = String(err); }
    };
    await tick();
    setInterval(tick, refreshMs());
  }

  // A journal "forecasts" table (bar_ts, symbol, quantiles: JSON {"0.1": [...], ...}, mean: JSON [...]) → one fan per symbol.
  function drawForecasts(rows) {
    const box = $("forecasts");
    if (!rows.length) { box.textContent = "this journal records no forecasts"; return; }
    rows.forEach((f, i) => {
      const id = "fan-" + i;
      let div = document.getElementById(id);
      if (!div) { box.appendChild(el("h3", `${f.symbol ?? ""} forecast made after bar ${time(f.bar_ts)}`)); div = box.appendChild(el("div", null, "chart small")); div.id = id; }
      let q = {}, mean = [];
      try { q = typeof f.quantiles === "string" ? JSON.parse(f.quantiles) : f.quantiles || {}; mean = typeof f.mean === "string" ? JSON.parse(f.mean) : f.mean || []; } catch (err) { div.textContent = String(err); return; }
      const levels = Object.keys(q).sort((a, b) => Number(a) - Number(b));
      const traces = [];
      if (levels.length >= 2) {
        const lo = q[levels[0]], hi = q[levels[levels.length - 1]], x = lo.map((_, k) => k + 1);
        traces.push({ x, y: lo, line: { width: 0 }, showlegend: false, name: `q${levels[0]}` });
        traces.push({ x, y: hi, fill: "tonexty", line: { width: 0 }, fillcolor: "rgba(31,119,180,0.25)", name: `q${levels[0]}-q${levels[levels.length - 1]}` });
      }
      if (mean.length) traces.push({ x: mean.map((_, k) => k + 1), y: mean, name: "mean", line: { color: "#1f77b4" } });
      plot(id, traces, { xaxis: { title: "bars ahead" } });
    });
  }

  async function sessionPage(number) {
    const tick = async () => {
      let s;
      try { s = await getJSON("/api/session/" + number); } catch (err) { showError(err); return; }
      $("updated").textContent = new Date().toISOString().slice(11, 19) + "Z";
      $("status").textContent = s.status;
      $("error").textContent = s.error || "";
      if (s.error) return;
      $("last-bar").textContent = s.last_bar ? `${time(s.last_bar.bar_ts)} close ${num(s.last_bar.close, 4)}` : "–";
      fillTable($("position"), s.position ? [s.position] : [], [["symbol", () => s.symbol ?? "–"], ["size", (p) => num(p.size, 6), "num"], ["price", (p) => num(p.price, 4), "num"]]);
      fillTable($("open-orders"), s.open_orders, [["cid", (o) => o.cid], ["side", (o) => o.side], ["type", (o) => o.type],
        ["amount", (o) => num(o.amount, 6), "num"], ["price", (o) => num(o.price, 4), "num"], ["status", (o) => o.status],
        ["exchange ids", (o) => (o.exchange || []).map((x) => x.order_id).join(" ")]]);
      $("fill-count").textContent = s.fill_count;
      fillTable($("fills"), s.fills, [["time", (f) => time(f.ts)], ["side", (f) => f.side], ["amount", (f) => num(f.amount, 6), "num"],
        ["price", (f) => num(f.price, 4), "num"], ["fee", (f) => num(f.fee, 6), "num"], ["trade id", (f) => f.trade_id], ["order id", (f) => f.order_id]]);
      $("fills").dataset.count = s.fill_count;
      fillTable($("refits"), s.refits, [["time", (e) => time(e.ts * 1000)], ["kind", (e) => e.kind], ["message", (e) => e.message]]);
      fillTable($("errors"), s.errors, [["time", (e) => time(e.ts * 1000)], ["kind", (e) => e.kind], ["message", (e) => e.message]]);
      fillTable($("events"), s.events.slice(0, 20), [["time", (e) => time(e.ts * 1000)], ["kind", (e) => e.kind], ["message", (e) => e.message]]);
      drawForecasts(s.forecasts);
      const eq = s.equity;
      const x = eq.time.map((t) => new Date(t).toISOString());
      const traces = [{ x, y: eq.value, name: "equity" }];
      if (eq.close.some((c) => c !== null)) traces.push({ x, y: eq.close, name: "close (right axis)", yaxis: "y2", line: { color: "#999", width: 1 } });
      plot("equity", traces, { margin: { l: 65, r: 60, t: 10, b: 35 }, yaxis: { title: "equity" }, yaxis2: { title: "close", overlaying: "y", side: "right", showgrid: false } });
    };
    await tick();
    setInterval(tick, refreshMs());
  }

  return { runsPage, runPage, comparePage, sessionsPage, sessionPage };
})();

// Pages carry their name and argument as data attributes (no inline script: the CSP allows none).
document.addEventListener("DOMContentLoaded", () => {
  const { page, arg } = document.body.dataset;
  const start = { runs: KB.runsPage, run: KB.runPage, compare: KB.comparePage, sessions: KB.sessionsPage, session: KB.sessionPage }[page];
  if (start) start(page === "session" ? Number(arg) : arg);
});
