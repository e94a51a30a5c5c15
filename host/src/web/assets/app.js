// perfhost web UI: state + history from the server, live updates over SSE, canvas charts.
'use strict';

const $ = (id) => document.getElementById(id);
const ACTIVE = ['spawning', 'running', 'paused', 'stopping'];

// ---------- formatting ----------
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const fmtMs = (v) => (!isNum(v) ? '–' : v < 100 ? v.toFixed(1) : String(Math.round(v)));
const fmtRps = (v) => (isNum(v) ? v.toFixed(1) : '–');
const fmtInt = (v) => (isNum(v) ? String(Math.round(v)) : '–');
const fmtPct = (r) => (isNum(r) ? (r * 100).toFixed(1) + '%' : '–');
function fmtDur(s) {
  if (!isNum(s)) return '–';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + 'h' : '') + (h || m ? m + 'm' : '') + sec + 's';
}
function fmtTick(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  if (a >= 1000) return (v / 1e3).toFixed(1) + 'k';
  return Number.isInteger(v) ? String(v) : String(+v.toFixed(2));
}

// ---------- small DOM helpers (text only, never innerHTML with data) ----------
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function setText(id, text) {
  const e = $(id);
  if (e && e.textContent !== text) e.textContent = text;
}
function fillTable(id, rows) {
  // rows: [{cls, cells}]; a cell is a string, {text, cls} or a Node
  const tbody = $(id).tBodies[0];
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = el('tr');
    if (r.cls) tr.className = r.cls;
    for (const c of r.cells) {
      const td = el('td');
      if (c instanceof Node) td.appendChild(c);
      else if (c && typeof c === 'object') { td.textContent = c.text; td.className = c.cls || ''; }
      else td.textContent = c;
      tr.appendChild(td);
    }
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
  const empty = document.querySelector('.empty[data-for="' + id + '"]');
  if (empty) empty.hidden = rows.length > 0;
}

// ---------- messages ----------
let msgFromServer = null; // last state.message shown, so a repeated one is not re-shown
function showMessage(text, kind, tag) {
  const m = $('message');
  m.dataset.tag = tag || ''; // 'conn' marks the lost-connection note, cleared on reconnect
  if (!text) { m.hidden = true; m.textContent = ''; return; }
  m.textContent = text;
  m.className = kind || 'info';
  m.hidden = false;
}

const showError = (e) => showMessage(e.message, 'error', e.conn ? 'conn' : '');

// ---------- HTTP ----------
async function request(method, url, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body) { opts.body = body; opts.headers['Content-Type'] = 'application/x-www-form-urlencoded'; }
  let res;
  try {
    res = await fetch(url, opts);
  } catch (e) {
    const err = new Error('Cannot reach perfhost (' + method + ' ' + url + ')');
    err.conn = true; // cleared once the live connection is back
    throw err;
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON: keep the text */ }
  if (!res.ok) {
    const why = (data && data.message) || text.trim() || res.statusText;
    throw new Error(res.status + ' ' + (why || 'error') + ' (' + method + ' ' + url + ')');
  }
  if (data === null) throw new Error('Unexpected answer from ' + url);
  return data;
}
const getJSON = (url) => request('GET', url);

// Control calls answer {success, message}; disable the button meanwhile so double clicks do nothing.
async function control(btn, method, url, body) {
  if (btn) btn.disabled = true;
  try {
    const r = await request(method, url, body);
    if (r.success === false) showMessage(r.message || 'Request failed', 'error');
    else showMessage(r.message || '', 'info');
    return r.success !== false;
  } catch (e) {
    showError(e);
    return false;
  } finally {
    if (btn) btn.disabled = false;
    if (cur.state) renderState(cur.state);
  }
}

// ---------- app state ----------
const cur = {
  state: null,       // last State
  runId: null,       // run the history belongs to
  points: [],        // history of that run, in t order
  showForm: false,   // "New test" clicked after a stopped run
  formFilled: false, // defaults copied into the form once, later edits are kept
  classesKey: '', scenariosKey: '',
  endpoints: new Set(), // endpoint names in points, for the select
  editRun: null,     // run whose target was copied into the edit inputs
  ro: false,         // read_only as last applied to the form
  excAt: 0,          // when /exceptions was last fetched
};

// ---------- state rendering ----------
function renderState(s) {
  const prevRun = cur.state ? cur.state.run_id : null;
  const prevState = cur.state ? cur.state.state : null;
  cur.state = s;
  const st = String(s.state || '');
  setText('state', st);
  $('state').dataset.state = st;
  setText('user-count', fmtInt(s.user_count || 0));
  setText('target-users', isNum(s.target_users) && ACTIVE.includes(st) ? ' / ' + s.target_users : '');
  $('kpi-rate').hidden = !s.open_model;
  setText('rate-now', isNum(s.rate_per_s) ? fmtRps(s.rate_per_s) + '/s' : '–');
  $('read-only').hidden = !s.read_only;

  if (s.message && s.message !== msgFromServer && s.message !== $('message').textContent) showMessage(s.message, 'info');
  msgFromServer = s.message || null;

  fillForm(s);
  if (ACTIVE.includes(st)) cur.showForm = false;
  const formVisible = !s.read_only && (st === 'ready' || (st === 'stopped' && cur.showForm));
  $('start-card').hidden = !formVisible;
  $('run-panel').hidden = formVisible || (st === 'ready' && !s.read_only); // read-only: say why nothing shows
  if (cur.ro !== !!s.read_only) { cur.ro = !!s.read_only; setDisabled($('start-form'), cur.ro); }
  renderRun(s, st);

  const memCard = $('memory-card');
  if (memCard.hidden === !!s.memory) {
    memCard.hidden = !s.memory;
    memCard.parentElement.classList.toggle('odd', !!s.memory); // 5 charts: the last one spans the row
    scheduleDraw();
  }
  renderClasses(s.classes || []);

  if (prevRun !== null && s.run_id !== prevRun) onNewRun(s.run_id);
  if (prevState && prevState !== st && (st === 'stopped' || st === 'ready')) refreshExceptions();
}

function setDisabled(container, dis) {
  for (const e of container.querySelectorAll('input, select, button')) e.disabled = !!dis;
}

function renderRun(s, st) {
  setText('run-name', st === 'ready' ? '' : s.run_name ? '“' + s.run_name + '”' : '#' + s.run_id);
  const parts = [];
  if (st === 'ready') parts.push('No test has started yet' + (s.read_only ? ' (read-only view)' : ''));
  else {
    if (s.host) parts.push(s.host);
    parts.push(fmtDur(s.elapsed_s) + (isNum(s.run_time_s) ? ' of ' + fmtDur(s.run_time_s) : ' elapsed'));
    if (s.open_model) parts.push('arrival rate ' + (isNum(s.rate_per_s) ? fmtRps(s.rate_per_s) + '/s' : '–') + ', max ' + fmtInt(s.target_users) + ' users');
    else parts.push('target ' + fmtInt(s.target_users) + ' users at ' + fmtRps(s.spawn_rate) + '/s');
  }
  setText('run-info', parts.join(' · '));
  const frac = isNum(s.run_time_s) && s.run_time_s > 0 && isNum(s.elapsed_s) ? Math.min(1, s.elapsed_s / s.run_time_s) : 0;
  $('progress-bar').style.width = (frac * 100).toFixed(1) + '%';

  $('controls').hidden = !!s.read_only;
  const live = st === 'spawning' || st === 'running';
  const closedLive = !s.open_model && (live || st === 'paused');
  $('edit-users').disabled = !closedLive;
  $('edit-spawn-rate').disabled = !closedLive;
  $('apply-users').disabled = !closedLive;
  $('pause').disabled = s.open_model || !live;
  $('resume').disabled = s.open_model || st !== 'paused';
  $('stop').disabled = !(live || st === 'paused');
  $('reset-stats').disabled = !(live || st === 'paused');
  $('new-test').disabled = st !== 'stopped';
  if (cur.editRun !== s.run_id && ACTIVE.includes(st)) {
    cur.editRun = s.run_id;
    $('edit-users').value = isNum(s.target_users) ? s.target_users : '';
    $('edit-spawn-rate').value = isNum(s.spawn_rate) ? s.spawn_rate : '';
  }
}

function fillForm(s) {
  const classes = Array.isArray(s.available_classes) ? s.available_classes : [];
  const key = JSON.stringify(classes);
  const d = s.defaults || {};
  if (key !== cur.classesKey) {
    const box = $('class-checks');
    const checked = new Set(cur.classesKey
      ? [...box.querySelectorAll('input:checked')].map((i) => i.value)
      : (d.user_classes || []));
    box.replaceChildren(...classes.map((name) => {
      const lab = el('label');
      const cb = el('input');
      cb.type = 'checkbox'; cb.name = 'user_classes'; cb.value = name; cb.checked = checked.has(name);
      lab.append(cb, document.createTextNode(name));
      return lab;
    }));
    cur.classesKey = key;
  }
  const scen = Array.isArray(s.scenarios) ? s.scenarios.filter((x) => x !== '') : [];
  const skey = JSON.stringify(scen);
  if (skey !== cur.scenariosKey) {
    const sel = $('scenario');
    const keep = cur.scenariosKey ? sel.value : (d.scenario || '');
    const none = el('option', '(none)'); none.value = '';
    sel.replaceChildren(none, ...scen.map((n) => { const o = el('option', n); o.value = n; return o; }));
    sel.value = scen.includes(keep) ? keep : '';
    cur.scenariosKey = skey;
  }
  if (!cur.formFilled) {
    cur.formFilled = true;
    const v = (x) => (x === null || x === undefined ? '' : String(x)); // null → empty field
    $('users').value = v(d.users);
    $('spawn-rate').value = v(d.spawn_rate);
    $('rate').value = v(d.rate);
    $('host').value = v(d.host);
    $('run-time').value = v(d.run_time);
  }
}

function renderClasses(classes) {
  const total = classes.reduce((a, c) => a + (isNum(c.weight) ? c.weight : 0), 0);
  fillTable('class-ratio', classes.map((c) => ({ cells: [
    String(c.name), { text: fmtInt(c.weight), cls: 'num' },
    { text: total ? ((c.weight / total) * 100).toFixed(1) + '%' : '–', cls: 'num' },
    { text: fmtInt(c.users), cls: 'num' },
  ] })));
}

// ---------- stats / failures / exceptions ----------
function renderStats(d) {
  if (!d || !Array.isArray(d.stats)) return;
  const rows = d.stats.map((r) => {
    const agg = r.name === 'Aggregated';
    return { cls: agg ? 'total' : '', cells: [
      String(r.method || ''), { text: String(r.name), cls: 'wrap' },
      { text: fmtInt(r.num_requests), cls: 'num' }, { text: fmtInt(r.num_failures), cls: 'num' },
      { text: fmtMs(r.median_response_time), cls: 'num' },
      { text: fmtMs(r['response_time_percentile_0.95']), cls: 'num' },
      { text: fmtMs(r['response_time_percentile_0.99']), cls: 'num' },
      { text: fmtMs(r.avg_response_time), cls: 'num' }, { text: fmtMs(r.min_response_time), cls: 'num' },
      { text: fmtMs(r.max_response_time), cls: 'num' }, { text: fmtInt(r.avg_content_length), cls: 'num' },
      { text: fmtRps(r.current_rps), cls: 'num' }, { text: fmtRps(r.current_fail_per_sec), cls: 'num' },
    ] };
  });
  fillTable('stats-table', rows);
  const agg = d.stats.find((r) => r.name === 'Aggregated') || d.stats[d.stats.length - 1];
  setText('request-count', agg ? fmtInt(agg.num_requests || 0) : '0');
  const rps = isNum(d.total_rps) ? d.total_rps : agg ? agg.current_rps : 0;
  setText('rps', fmtRps(rps || 0));
  setText('fail-ratio', fmtPct(isNum(d.fail_ratio) ? d.fail_ratio : 0));
  fillTable('failures-table', (d.errors || []).map((e) => ({ cells: [
    String(e.method || ''), { text: String(e.name || ''), cls: 'wrap' }, { text: String(e.error || ''), cls: 'wrap' },
    { text: fmtInt(e.occurrences), cls: 'num' },
  ] })));
  // /exceptions has no event: refresh it now and then while a run goes
  if (cur.state && ACTIVE.includes(cur.state.state) && Date.now() - cur.excAt > 5000) refreshExceptions();
}

function renderExceptions(d) {
  const list = d && Array.isArray(d.exceptions) ? d.exceptions : [];
  fillTable('exceptions-table', list.map((x) => {
    let tb = '';
    if (x.traceback) {
      tb = el('details');
      tb.append(el('summary', 'show'), el('pre', x.traceback));
    }
    return { cells: [{ text: fmtInt(x.count), cls: 'num' }, { text: String(x.msg || ''), cls: 'wrap' }, tb, String(x.nodes || '')] };
  }));
}

async function refreshStats() {
  try { renderStats(await getJSON('/stats/requests')); } catch (e) { showError(e); }
}
async function refreshExceptions() {
  cur.excAt = Date.now();
  try { renderExceptions(await getJSON('/exceptions')); } catch (e) { showError(e); }
}

// ---------- history ----------
function onNewRun(runId) {
  if (cur.runId !== runId) { // a point event may have switched already
    cur.runId = runId;
    cur.points = [];
    updateEndpoints([], true);
    scheduleDraw();
  }
  loadHistory();
  refreshStats();
  refreshExceptions();
}

let historySeq = 0;
async function loadHistory() {
  const seq = ++historySeq; // a slower, older answer must not overwrite a newer one
  try {
    const h = await getJSON('/api/history');
    if (seq !== historySeq) return;
    const pts = Array.isArray(h.points) ? h.points.slice() : [];
    const last = pts.length ? pts[pts.length - 1].t : -Infinity;
    // keep points that arrived over SSE while the request was on its way
    const extra = cur.runId === h.run_id ? cur.points.filter((p) => p.t > last) : [];
    cur.runId = h.run_id;
    cur.points = pts.concat(extra);
    updateEndpoints(cur.points, true);
    scheduleDraw();
  } catch (e) {
    if (seq !== historySeq) return;
    showError(e);
    // without the history the charts would only show points since load: try again
    const run = cur.runId;
    setTimeout(() => { if (seq === historySeq && cur.runId === run) loadHistory(); }, 5000);
  }
}

function addPoint(ev) {
  if (!ev || !ev.point) return;
  if (ev.run_id !== cur.runId) {
    // another run: drop the old charts and take the whole new history
    cur.runId = ev.run_id;
    cur.points = [ev.point];
    updateEndpoints(cur.points, true);
    loadHistory();
  } else {
    const last = cur.points[cur.points.length - 1];
    if (last && ev.point.t <= last.t) return;
    cur.points.push(ev.point);
    updateEndpoints([ev.point], false);
  }
  scheduleDraw();
}

// Endpoint names seen in this run's points; only the new points are scanned.
function updateEndpoints(pts, reset) {
  if (reset) cur.endpoints = new Set();
  const before = cur.endpoints.size;
  for (const p of pts) if (p.endpoints) for (const k of Object.keys(p.endpoints)) cur.endpoints.add(k);
  const sel = $('endpoint-select');
  if (!reset && cur.endpoints.size === before) return;
  const list = [...cur.endpoints].sort();
  const keep = sel.value;
  const opts = list.map((n) => { const o = el('option', n); o.value = n; return o; });
  if (!opts.length) { opts.push(el('option', '(no endpoints yet)')); opts[0].value = ''; }
  sel.replaceChildren(...opts);
  sel.value = list.includes(keep) ? keep : list.length ? list[0] : '';
}

// ---------- charts ----------
let drawPending = false;
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; drawAll(); });
}

function drawAll() {
  const P = cur.points;
  const xs = P.map((p) => p.t);
  const col = getComputedStyle(document.documentElement);
  const c = (n) => col.getPropertyValue(n).trim() || '#888';
  const pick = (f) => P.map((p) => { const v = f(p); return isNum(v) ? v : null; });
  drawChart($('chart-rps'), xs, [
    { label: 'requests/s', color: c('--c1'), data: pick((p) => p.rps), fmt: fmtRps },
    { label: 'failures/s', color: c('--c2'), data: pick((p) => p.fails_per_s), fmt: fmtRps },
  ]);
  drawChart($('chart-latency'), xs, [
    { label: 'p50', color: c('--c4'), data: pick((p) => p.p50), fmt: fmtMs, unit: ' ms' },
    { label: 'p95', color: c('--c1'), data: pick((p) => p.p95), fmt: fmtMs, unit: ' ms' },
    { label: 'p99', color: c('--c3'), data: pick((p) => p.p99), fmt: fmtMs, unit: ' ms' },
  ]);
  drawChart($('chart-users'), xs, [{ label: 'users', color: c('--c1'), data: pick((p) => p.users), fmt: fmtInt }]);
  drawChart($('chart-memory'), xs, [
    { label: 'memory', color: c('--c3'), data: pick((p) => p.memory_mb), fmt: (v) => v.toFixed(1), unit: ' MB' },
  ]);
  const ep = $('endpoint-select').value;
  const epPts = ep ? P.filter((p) => p.endpoints && p.endpoints[ep]) : [];
  const epv = (f) => epPts.map((p) => { const v = p.endpoints[ep][f]; return isNum(v) ? v : null; });
  drawChart($('chart-endpoint'), epPts.map((p) => p.t), [
    { label: 'requests/s', color: c('--c1'), data: epv('rps'), fmt: fmtRps },
    { label: 'p95', color: c('--c3'), data: epv('p95'), fmt: fmtMs, unit: ' ms', right: true },
  ]);
}

function niceTicks(max, n) {
  if (!(max > 0)) max = n; // empty chart: whole-number ticks
  const raw = max / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const top = Math.ceil(max / step - 1e-9) * step;
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(+v.toPrecision(12));
  return { top, ticks };
}

function drawChart(canvas, xs, series) {
  canvas.dataset.points = String(xs.length);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return; // hidden: nothing to draw, the count above is still right
  const dpr = window.devicePixelRatio || 1;
  const bw = Math.round(w * dpr), bh = Math.round(h * dpr);
  if (canvas.width !== bw || canvas.height !== bh) { canvas.width = bw; canvas.height = bh; }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const col = getComputedStyle(document.documentElement);
  const fg = col.getPropertyValue('--muted').trim() || '#666';
  const grid = col.getPropertyValue('--grid').trim() || '#eee';
  ctx.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  ctx.textBaseline = 'middle';

  const hasRight = series.some((s) => s.right);
  const maxOf = (ss) => ss.reduce((m, s) => s.data.reduce((a, v) => (v !== null && v > a ? v : a), m), 0);
  const left = niceTicks(maxOf(series.filter((s) => !s.right)), 4);
  const right = hasRight ? niceTicks(maxOf(series.filter((s) => s.right)), 4) : null;
  const widest = (t) => Math.max(...t.ticks.map((v) => ctx.measureText(fmtTick(v)).width));
  const pad = { l: Math.ceil(widest(left)) + 10, r: right ? Math.ceil(widest(right)) + 12 : 12, t: 22, b: 20 };
  const pw = Math.max(10, w - pad.l - pad.r), ph = Math.max(10, h - pad.t - pad.b);
  const xmax = Math.max(10, xs.length ? xs[xs.length - 1] : 0);
  const X = (t) => pad.l + (t / xmax) * pw;
  const Y = (v, ax) => pad.t + ph - (v / ax.top) * ph;

  // grid + y labels
  ctx.lineWidth = 1;
  ctx.strokeStyle = grid;
  ctx.fillStyle = fg;
  left.ticks.forEach((v) => {
    const y = Math.round(Y(v, left)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + pw, y); ctx.stroke();
    ctx.textAlign = 'right'; ctx.fillText(fmtTick(v), pad.l - 6, y);
  });
  if (right) {
    ctx.textAlign = 'left';
    right.ticks.forEach((v) => ctx.fillText(fmtTick(v), pad.l + pw + 6, Y(v, right)));
  }
  // x ticks in seconds
  const xt = niceTicks(xmax, Math.max(2, Math.floor(pw / 70)));
  ctx.textAlign = 'center'; ctx.textBaseline = 'top';
  for (const t of xt.ticks) {
    if (t > xmax + 1e-9) break;
    const x = Math.round(X(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, pad.t + ph); ctx.lineTo(x, pad.t + ph + 4); ctx.stroke();
    ctx.fillText(fmtTick(t) + 's', Math.min(Math.max(x, pad.l + 8), w - 12), pad.t + ph + 6);
  }
  ctx.strokeStyle = fg;
  ctx.beginPath(); ctx.moveTo(pad.l, pad.t + ph + 0.5); ctx.lineTo(pad.l + pw, pad.t + ph + 0.5); ctx.stroke();

  // lines; a null breaks the line (no request in that window)
  ctx.lineWidth = 1.75; ctx.lineJoin = 'round';
  for (const s of series) {
    const ax = s.right ? right : left;
    ctx.strokeStyle = s.color;
    ctx.beginPath();
    let pen = false, solo = null;
    for (let i = 0; i < xs.length; i++) {
      const v = s.data[i];
      if (v === null) { pen = false; continue; }
      const x = X(xs[i]), y = Y(v, ax);
      if (pen) { ctx.lineTo(x, y); solo = null; } else { ctx.moveTo(x, y); solo = [x, y]; }
      pen = true;
    }
    ctx.stroke();
    if (solo && xs.length === 1) { ctx.fillStyle = s.color; ctx.fillRect(solo[0] - 2, solo[1] - 2, 4, 4); }
  }

  // legend with the latest value
  ctx.textBaseline = 'middle'; ctx.textAlign = 'left';
  let lx = pad.l;
  for (const s of series) {
    let last = null;
    for (let i = s.data.length - 1; i >= 0; i--) if (s.data[i] !== null) { last = s.data[i]; break; }
    const txt = s.label + (last !== null ? ' ' + s.fmt(last) + (s.unit || '') : '') + (s.right && hasRight ? ' (right)' : '');
    ctx.fillStyle = s.color; ctx.fillRect(lx, 6, 10, 3);
    ctx.fillStyle = fg; ctx.fillText(txt, lx + 14, 8);
    lx += 14 + ctx.measureText(txt).width + 14;
  }
  if (!xs.length) {
    ctx.textAlign = 'center';
    ctx.fillText('No data yet', pad.l + pw / 2, pad.t + ph / 2);
  }
}

// ---------- live events ----------
let es = null, everOpen = false, retryMs = 1000, retryTimer = 0, lostTimer = 0;
function setConn(ok, text) {
  const c = $('conn');
  c.dataset.ok = ok ? '1' : '';
  c.textContent = text;
}
function parse(e) {
  try { return JSON.parse(e.data); } catch (err) { return null; }
}
function connect() {
  if (typeof EventSource === 'undefined') { setConn(false, 'no live updates'); return; }
  es = new EventSource('/api/events');
  es.addEventListener('open', () => {
    retryMs = 1000;
    clearTimeout(lostTimer);
    lostTimer = 0;
    setConn(true, 'live');
    if ($('message').dataset.tag === 'conn') showMessage('');
    if (everOpen) { loadHistory(); refreshStats(); refreshExceptions(); } // missed points while away
    everOpen = true;
  });
  es.addEventListener('error', () => {
    setConn(false, 'reconnecting');
    // a dropped stream usually comes back within seconds: only speak up if it does not
    if (!lostTimer) lostTimer = setTimeout(() => {
      lostTimer = 0;
      if (es.readyState !== EventSource.OPEN && $('message').hidden) showMessage('Live connection to perfhost lost; reconnecting…', 'error', 'conn');
    }, 5000);
    // CLOSED means the browser gave up (e.g. an HTTP error): retry ourselves with backoff
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    }
  });
  es.addEventListener('state', (e) => { const s = parse(e); if (s) renderState(s); });
  es.addEventListener('point', (e) => { const p = parse(e); if (p) addPoint(p); });
  es.addEventListener('stats', (e) => { const d = parse(e); if (d) renderStats(d); });
}

// ---------- controls ----------
function bind() {
  $('start-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new URLSearchParams();
    f.set('user_count', $('users').value.trim());
    f.set('spawn_rate', $('spawn-rate').value.trim());
    // Only an edited host is sent: the command line's URL may carry credentials the page
    // never sees.
    const host = $('host').value.trim();
    if (host !== String((cur.state && cur.state.defaults && cur.state.defaults.host) || '')) f.set('host', host);
    f.set('run_time', $('run-time').value.trim());
    for (const cb of document.querySelectorAll('#user-classes input[name="user_classes"]:checked')) f.append('user_classes', cb.value);
    f.set('scenario', $('scenario').value);
    const rate = $('rate').value.trim();
    if (rate) f.set('rate', rate);
    // Empty: the command line's --http-version (auto unless it says otherwise).
    if ($('http-version').value) f.set('http_version', $('http-version').value);
    if (await control($('start'), 'POST', '/swarm', f.toString())) {
      cur.showForm = false;
      refreshState();
    }
  });
  // A scenario brings its own users, spawn rate and run time: fields left empty keep them
  // (filled ones override it, as on the command line).
  $('scenario').addEventListener('change', () => {
    const chosen = $('scenario').value !== '';
    const d = (cur.state && cur.state.defaults) || {};
    const v = (x) => (x === null || x === undefined ? '' : String(x));
    for (const [id, key] of [['users', 'users'], ['spawn-rate', 'spawn_rate'], ['run-time', 'run_time']]) {
      const input = $(id);
      input.required = !chosen && id !== 'run-time';
      input.value = chosen ? '' : v(d[key]);
      input.placeholder = chosen ? 'from the scenario' : (id === 'run-time' ? 'e.g. 60s, 5m' : '');
    }
  });
  $('edit-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new URLSearchParams();
    f.set('user_count', $('edit-users').value.trim());
    f.set('spawn_rate', $('edit-spawn-rate').value.trim());
    await control($('apply-users'), 'POST', '/swarm', f.toString());
  });
  $('pause').addEventListener('click', () => control($('pause'), 'POST', '/api/pause'));
  $('resume').addEventListener('click', () => control($('resume'), 'POST', '/api/resume'));
  $('stop').addEventListener('click', () => control($('stop'), 'GET', '/stop'));
  $('reset-stats').addEventListener('click', async () => {
    if (await control($('reset-stats'), 'GET', '/stats/reset')) { refreshStats(); refreshExceptions(); }
  });
  $('new-test').addEventListener('click', () => {
    cur.showForm = true;
    if (cur.state) renderState(cur.state);
    $('users').focus();
  });
  $('endpoint-select').addEventListener('change', scheduleDraw);
  if (typeof ResizeObserver !== 'undefined') {
    const ro = new ResizeObserver(scheduleDraw);
    for (const c of document.querySelectorAll('canvas')) ro.observe(c);
  }
  window.addEventListener('resize', scheduleDraw);
}

async function refreshState() {
  try { renderState(await getJSON('/api/state')); } catch (e) { showError(e); }
}

async function init() {
  bind();
  await refreshState();
  if (cur.state) cur.runId = cur.state.run_id;
  await Promise.all([loadHistory(), refreshStats(), refreshExceptions()]);
  connect();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
