// edgeflow dashboard. Plain JavaScript, no build step; the one library is
// uPlot (vendor/uplot, loaded before this script as the global uPlot).
// Rule: every string that came from a device, a broker or another service
// reaches the page through textContent (el() and text()), never as markup.
'use strict';
(() => {
  const NAME = /^[A-Za-z0-9_-]{1,64}$/;
  const RANGES = ['15m', '1h', '24h', '7d'];
  const LIVE_SPAN = 120e3; // live chart: the last two minutes

  // ---- DOM helpers ----------------------------------------------------
  function el(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) {
      if (c == null || c === false) continue;
      e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function text(node, s) {
    s = String(s);
    if (node.textContent !== s) node.textContent = s;
  }
  function link(href, ...children) {
    const a = el('a', null, ...children);
    a.href = href;
    return a;
  }
  function deviceHref(site, device) {
    return '#/device/' + encodeURIComponent(site) + '/' + encodeURIComponent(device);
  }
  function table(headers, cls) {
    const t = el('table', cls);
    const tr = el('tr');
    for (const h of headers) tr.append(el('th', null, h));
    t.append(el('thead', null, tr), el('tbody'));
    return t;
  }
  function row(...cells) {
    const tr = el('tr');
    for (const c of cells) tr.append(c instanceof Node && c.nodeName === 'TD' ? c : el('td', null, c));
    return tr;
  }

  // ---- formatting -----------------------------------------------------
  function fmtNum(v) {
    if (v == null || !isFinite(v)) return '–';
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return String(+v.toFixed(a >= 100 ? 1 : a >= 10 ? 2 : 3));
  }
  function fmtRate(v) { return v == null ? '–' : v >= 100 ? Math.round(v).toString() : v.toFixed(1); }
  function fmtAgo(ms) {
    if (!ms) return 'never';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ago';
    return Math.floor(s / 86400) + 'd ago';
  }
  function fmtTime(ms, withDate) {
    if (!ms) return '–';
    const d = new Date(ms);
    const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    return withDate ? d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + t : t;
  }
  // The pipeline's InfluxDB tile: "ok", or "down" with what fails (unreachable,
  // or the bucket missing) on hover.
  function influxStatus(s) {
    const ok = s === 'ok';
    const e = el('span', 'value big ' + (ok ? 'ok' : 'bad'), ok ? 'ok' : 'down');
    if (!ok) e.title = s;
    return e;
  }
  function fmtBytes(b) {
    if (b < 1024) return b + ' B';
    if (b < 1 << 20) return (b / 1024).toFixed(1) + ' KiB';
    if (b < 1 << 30) return (b / (1 << 20)).toFixed(1) + ' MiB';
    return (b / (1 << 30)).toFixed(2) + ' GiB';
  }

  // ---- network --------------------------------------------------------
  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.status + ' ' + r.statusText);
    return body;
  }

  // ---- state ----------------------------------------------------------
  const state = {
    devices: new Map(), // "site/device" -> {site, device, seen, m: Map(metric -> {last:[t,v], spark:[v], points:[[t,v]]})}
    offlineAfter: 30e3,
    alerts: { firing: [], pending: [], resolved: [], history: [] },
    route: null,
    es: null,
  };
  const key = (site, device) => site + '/' + device;

  function mergeDevice(s, withPoints) {
    if (!NAME.test(s.site) || !NAME.test(s.device)) return null;
    const k = key(s.site, s.device);
    let d = state.devices.get(k);
    if (!d) { d = { site: s.site, device: s.device, seen: 0, m: new Map() }; state.devices.set(k, d); }
    d.seen = Math.max(d.seen, s.seen || 0);
    for (const [name, m] of Object.entries(s.m || {})) {
      if (!NAME.test(name)) continue;
      let cur = d.m.get(name);
      if (!cur) { cur = { last: null, spark: [], points: [] }; d.m.set(name, cur); }
      if (!cur.last || m.last[0] >= cur.last[0]) cur.last = m.last;
      if (m.unit) cur.unit = m.unit;
      if (m.spark) cur.spark = m.spark.slice();
      if (withPoints && m.points) cur.points = m.points.slice();
    }
    return d;
  }

  // applyUpdate merges one live update; it returns the device, and whether
  // it is new to the page.
  function applyUpdate(u) {
    if (!NAME.test(u.site) || !NAME.test(u.device)) return [null, false];
    const k = key(u.site, u.device);
    const isNew = !state.devices.has(k);
    const d = mergeDevice({ site: u.site, device: u.device, seen: u.seen, m: {} });
    for (const [name, p] of Object.entries(u.m || {})) {
      if (!NAME.test(name)) continue;
      let cur = d.m.get(name);
      if (!cur) { cur = { last: null, spark: [], points: [] }; d.m.set(name, cur); }
      if (cur.last && p[0] < cur.last[0]) continue;
      const sameSecond = cur.last && Math.floor(p[0] / 1000) === Math.floor(cur.last[0] / 1000);
      cur.last = p;
      if (sameSecond && cur.spark.length) cur.spark[cur.spark.length - 1] = p[1];
      else { cur.spark.push(p[1]); if (cur.spark.length > 30) cur.spark.shift(); }
      if (sameSecond && cur.points.length) cur.points[cur.points.length - 1] = p;
      else { cur.points.push(p); if (cur.points.length > 240) cur.points.shift(); }
      cur.dirty = true;
    }
    return [d, isNew];
  }

  const online = (d) => d.seen && Date.now() - d.seen < state.offlineAfter;

  // ---- canvas charts ---------------------------------------------------
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function setupCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return null;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    return { g, w, h };
  }

  function drawSpark(c, values) {
    const s = setupCanvas(c);
    if (!s || values.length < 2) return;
    const { g, w, h } = s;
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (hi === lo) { hi += 1; lo -= 1; }
    g.strokeStyle = css('--accent'); g.lineWidth = 1.5; g.lineJoin = 'round';
    g.beginPath();
    values.forEach((v, i) => {
      const x = 1 + (i / (values.length - 1)) * (w - 2);
      const y = h - 2 - ((v - lo) / (hi - lo)) * (h - 4);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }

  // ---- uPlot charts ----------------------------------------------------
  // withGaps turns [[t, ...values]] (ms) into uPlot's columns (seconds),
  // with a null row wherever two points are more than maxGap apart, so a
  // gap in the data is a gap in the line.
  function withGaps(rows, width, maxGap) {
    const cols = Array.from({ length: width }, () => []);
    let prev = null;
    for (const r of rows) {
      if (prev != null && r[0] - prev > maxGap) {
        cols[0].push((prev + r[0]) / 2000);
        for (let i = 1; i < width; i++) cols[i].push(null);
      }
      cols[0].push(r[0] / 1000);
      for (let i = 1; i < width; i++) cols[i].push(r[i] == null ? null : r[i]);
      prev = r[0];
    }
    return cols;
  }

  // Chart is one uPlot time chart in node: hover shows each series' value
  // in the legend, a drag zooms the time axis, a double-click goes back to
  // the whole range. node.dataset says what is on screen (xmin, xmax) and
  // where the data is (first, last), in ms. The chart is zoomed while its
  // x scale is other than the range asked for: uPlot applies scales in a
  // microtask, so that is told from the scale, not from who set it.
  class Chart {
    constructor(node, kind) {
      this.node = node;
      this.kind = kind; // 'live': one line; 'history': min/max band and mean
      this.zoomed = false;
      this.u = null;
      this.key = '';
    }
    // setData shows rows ([t, v] or [t, min, max, mean]) of metric in unit
    // over [x0, x1] (ms).
    setData(rows, { metric, unit, x0, x1, maxGap, empty }) {
      const key = metric + '|' + unit;
      this.x0 = x0 / 1000; this.x1 = x1 / 1000;
      if (!this.u || this.key !== key) this.build(metric, unit, key);
      const width = this.kind === 'live' ? 2 : 4;
      const data = withGaps(rows, width, maxGap);
      this.u.setData(data, false);
      if (!this.zoomed) this.fit();
      else this.u.redraw(true, true);
      this.node.dataset.points = String(rows.length);
      this.node.dataset.first = rows.length ? String(rows[0][0]) : '';
      this.node.dataset.last = rows.length ? String(rows[rows.length - 1][0]) : '';
      this.node.classList.toggle('no-data', !rows.length);
      this.node.dataset.empty = rows.length ? '' : empty;
    }
    build(metric, unit, key) {
      if (this.u) this.u.destroy();
      this.key = key;
      this.zoomed = false;
      const suffix = unit ? ' ' + unit : '';
      const value = (u, v) => (v == null ? '–' : fmtNum(v) + suffix);
      const accent = css('--accent'), band = css('--band'), muted = css('--muted'), grid = css('--grid');
      const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
      const series = [{ value: (u, t) => (t == null ? '–' : fmtTime(t * 1000, this.x1 - this.x0 > 36 * 3600)) }];
      const opts = {
        width: this.width(), height: this.height(),
        series,
        axes: [Object.assign({}, axis), Object.assign({ label: unit || undefined, size: 56,
          values: (u, vals) => vals.map((v) => fmtNum(v)) }, axis)],
        scales: { x: { time: true }, y: { auto: true } },
        cursor: { drag: { x: true, y: false, setScale: true } },
        legend: { live: true },
        hooks: {
          setScale: [(u, k) => {
            if (k !== 'x') return;
            const { min, max } = u.scales.x;
            if (!Number.isFinite(min) || !Number.isFinite(max)) return;
            this.zoomed = Math.abs(min - this.x0) > 1e-3 || Math.abs(max - this.x1) > 1e-3;
            this.node.dataset.xmin = String(Math.round(min * 1000));
            this.node.dataset.xmax = String(Math.round(max * 1000));
          }],
        },
      };
      if (this.kind === 'live') {
        series.push({ label: metric, stroke: accent, width: 2, value, points: { show: (u) => u.data[0].length < 60 } });
      } else {
        series.push({ label: 'min', stroke: band, width: 1, value, points: { show: false } },
          { label: 'max', stroke: band, width: 1, value, points: { show: false } },
          { label: 'mean', stroke: accent, width: 2, value, points: { show: (u) => u.data[0].length < 60 } });
        opts.bands = [{ series: [2, 1], fill: band }];
      }
      this.node.replaceChildren();
      this.u = new uPlot(opts, [[]].concat(series.slice(1).map(() => [])), this.node);
      // uPlot's own double-click resets the x scale to the data; the whole
      // range asked for is what the chart shows unzoomed.
      this.u.over.addEventListener('dblclick', () => { this.zoomed = false; this.fit(); });
    }
    fit() { this.u.setScale('x', { min: this.x0, max: this.x1 }); }
    width() { return Math.max(200, this.node.clientWidth || 600); }
    height() { return window.innerWidth <= 600 ? 200 : 240; }
    resize() { if (this.u) this.u.setSize({ width: this.width(), height: this.height() }); }
    destroy() { if (this.u) this.u.destroy(); this.u = null; }
  }

  // ---- alerts banner (every page) ---------------------------------------
  function renderBanner() {
    const b = document.getElementById('banner');
    const firing = state.alerts.firing;
    const count = document.getElementById('alert-count');
    count.hidden = firing.length === 0;
    text(count, firing.length);
    b.hidden = firing.length === 0;
    if (!firing.length) { b.replaceChildren(); return; }
    const items = firing.slice(0, 3).map((a) => {
      const li = el('li', null, el('strong', null, a.rule), ' on ',
        link(deviceHref(a.site, a.device), a.site + '/' + a.device));
      if (a.value != null) li.append(' ', el('span', 'num', fmtNum(a.value)), a.threshold != null ? ' (threshold ' + fmtNum(a.threshold) + ')' : '');
      if (a.severity) li.append(' ', el('span', 'sev sev-' + a.severity, a.severity));
      return li;
    });
    const more = firing.length > 3 ? link('#/alerts', 'and ' + (firing.length - 3) + ' more') : null;
    b.replaceChildren(...[el('span', 'banner-title', firing.length + ' firing'), el('ul', null, ...items), more].filter(Boolean));
  }

  function applyAlert(a) {
    const lists = state.alerts;
    const k = a.site + '/' + a.device + '/' + a.rule;
    for (const name of ['firing', 'pending', 'resolved']) {
      lists[name] = lists[name].filter((x) => x.site + '/' + x.device + '/' + x.rule !== k);
    }
    const target = a.state === 'firing' ? 'firing' : a.state === 'pending' ? 'pending' : 'resolved';
    lists[target].unshift(a);
    if (lists.history) { lists.history.unshift(a); if (lists.history.length > 500) lists.history.pop(); }
    renderBanner();
  }

  // ---- views --------------------------------------------------------------
  const view = () => document.getElementById('view');
  const views = {};

  // Overview: every site and device, online/offline, latest value and a
  // sparkline per metric. Cards are drawn only while visible.
  views.overview = {
    topic: () => 'view=overview',
    cards: new Map(),
    async load() {
      const o = await getJSON('/api/overview');
      state.offlineAfter = o.offline_after || state.offlineAfter;
      for (const s of o.devices) mergeDevice(s, false);
      this.render();
    },
    render() {
      this.cards.clear();
      if (this.observer) this.observer.disconnect();
      this.observer = new IntersectionObserver((entries) => {
        for (const e of entries) {
          const card = e.target.__card;
          card.visible = e.isIntersecting;
          if (card.visible) drawCard(card, true);
        }
      });
      const bySite = new Map();
      for (const d of [...state.devices.values()].sort((a, b) => (a.site + '/' + a.device < b.site + '/' + b.device ? -1 : 1))) {
        if (!bySite.has(d.site)) bySite.set(d.site, []);
        bySite.get(d.site).push(d);
      }
      const root = el('div', 'overview');
      const total = state.devices.size;
      const up = [...state.devices.values()].filter(online).length;
      const filter = this.filterBox();
      const focused = document.activeElement === filter;
      root.append(el('div', 'page-head', el('h1', null, 'Devices'),
        el('span', 'muted', this.summary = el('span', null, up + ' of ' + total + ' online')),
        this.matchInfo = el('span', 'muted small'), filter));
      if (!total) root.append(el('p', 'muted empty', 'No device has reported yet. Readings appear here as they arrive.'));
      this.sections = [];
      for (const [site, list] of bySite) {
        const grid = el('div', 'grid');
        const sec = { cards: [] };
        for (const d of list) {
          const node = this.card(d);
          grid.append(node);
          sec.cards.push({ node, text: (d.site + '/' + d.device).toLowerCase() });
        }
        sec.node = el('section', 'site', el('h2', null, site, el('span', 'muted count', ' · ' + list.length)), grid);
        this.sections.push(sec);
        root.append(sec.node);
      }
      this.root = root;
      view().replaceChildren(root);
      if (focused) filter.focus();
      this.applyFilter();
    },
    // filterBox is the device filter: a case-insensitive match on
    // "site/device", applied 150 ms after the last keystroke, in the
    // browser (the overview API sends every device).
    filterBox() {
      if (!this.filterInput) {
        const f = el('input', 'filter');
        f.type = 'search';
        f.id = 'device-filter';
        f.placeholder = 'Filter by site or device';
        f.setAttribute('aria-label', 'Filter devices by site or device');
        let timer;
        f.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => this.applyFilter(), 150); });
        this.filterInput = f;
      }
      return this.filterInput;
    },
    applyFilter() {
      const q = this.filterInput.value.trim().toLowerCase();
      let shown = 0;
      for (const sec of this.sections || []) {
        let n = 0;
        for (const c of sec.cards) {
          const hit = !q || c.text.includes(q);
          c.node.hidden = !hit;
          if (hit) n++;
        }
        sec.node.hidden = n === 0;
        shown += n;
      }
      text(this.matchInfo, q ? shown + ' shown' : '');
      if (this.root) this.root.dataset.shown = String(shown);
    },
    card(d) {
      const status = el('span', 'status');
      const seen = el('span', 'seen muted');
      const metrics = el('div', 'metrics');
      const card = { d, status, seen, metrics, rows: new Map(), visible: false };
      const node = el('article', 'card',
        el('div', 'card-head', link(deviceHref(d.site, d.device), d.device), status), seen, metrics);
      node.__card = card;
      card.node = node;
      this.cards.set(key(d.site, d.device), card);
      this.observer.observe(node);
      drawCard(card, false);
      return node;
    },
    onDevices(batch) {
      let added = false;
      for (const u of batch.u) {
        const [d, isNew] = applyUpdate(u);
        if (!d) continue;
        if (isNew || !this.cards.has(key(d.site, d.device))) { added = true; continue; }
        const card = this.cards.get(key(d.site, d.device));
        card.dirty = true;
      }
      if (added) { this.render(); return; }
      schedule(() => { for (const c of this.cards.values()) if (c.dirty && c.visible) { c.dirty = false; drawCard(c, true); } });
    },
    second() {
      let up = 0;
      for (const c of this.cards.values()) { if (online(c.d)) up++; drawStatus(c); }
      if (this.summary) text(this.summary, up + ' of ' + state.devices.size + ' online');
    },
  };

  function drawStatus(card) {
    const on = online(card.d);
    text(card.status, on ? 'online' : 'offline');
    card.status.className = 'status ' + (on ? 'on' : 'off');
    text(card.seen, 'seen ' + fmtAgo(card.d.seen));
  }

  function drawCard(card, withSparks) {
    drawStatus(card);
    const names = [...card.d.m.keys()].sort();
    for (const name of names) {
      const m = card.d.m.get(name);
      let r = card.rows.get(name);
      if (!r) {
        r = { value: el('span', 'value'), canvas: el('canvas', 'spark') };
        r.canvas.setAttribute('aria-hidden', 'true');
        card.rows.set(name, r);
        card.metrics.append(el('div', 'metric', el('span', 'metric-name', name), r.value, r.canvas));
      }
      text(r.value, fmtNum(m.last && m.last[1]));
      if (withSparks) drawSpark(r.canvas, m.spark);
    }
  }

  let pending = null;
  function schedule(fn) {
    if (pending) { pending.push(fn); return; }
    pending = [fn];
    requestAnimationFrame(() => { const fns = pending; pending = null; for (const f of fns) f(); });
  }

  // Device page: a live chart of incoming readings and a history chart
  // (min/max band, mean line) over 15m, 1h, 24h or 7d, per metric.
  views.device = {
    topic: (r) => 'view=device&site=' + encodeURIComponent(r.site) + '&device=' + encodeURIComponent(r.device),
    metric: null,
    range: '1h',
    hist: null,
    async load(r) {
      this.r = r;
      this.hist = null;
      const head = el('div', 'page-head', el('h1', null, el('span', 'muted', r.site + ' / '), r.device),
        this.status = el('span', 'status'), this.seen = el('span', 'seen muted'));
      this.tabs = el('div', 'tabs', );
      this.tabs.setAttribute('role', 'tablist');
      this.latest = el('div', 'latest');
      if (this.liveChart) this.liveChart.destroy();
      if (this.histChart) this.histChart.destroy();
      this.liveNode = el('div', 'chart');
      this.liveNode.id = 'live-chart';
      this.histNode = el('div', 'chart');
      this.histNode.id = 'history-chart';
      this.liveChart = new Chart(this.liveNode, 'live');
      this.histChart = new Chart(this.histNode, 'history');
      this.histInfo = el('span', 'muted small');
      this.csv = el('a', 'csv', 'CSV');
      this.csv.id = 'history-csv';
      this.csv.title = 'download this range as CSV';
      const ranges = el('div', 'ranges');
      for (const rg of RANGES) {
        const b = el('button', rg === this.range ? 'active' : '', rg);
        b.type = 'button';
        b.dataset.range = rg;
        b.addEventListener('click', () => { this.range = rg; for (const x of ranges.children) x.classList.toggle('active', x === b); this.histChart.zoomed = false; this.loadHistory(); });
        ranges.append(b);
      }
      ranges.append(this.csv);
      view().replaceChildren(el('div', 'device', head, this.latest, this.tabs,
        el('section', 'panel', el('div', 'panel-head', el('h2', null, 'Live'), el('span', 'muted small', 'last 2 minutes, one point per second')), this.liveNode),
        el('section', 'panel', el('div', 'panel-head', el('h2', null, 'History'), ranges), this.histNode,
          el('div', 'legend', 'drag to zoom, double-click to reset', this.histInfo))));
      try {
        const o = await getJSON('/api/devices/' + encodeURIComponent(r.site) + '/' + encodeURIComponent(r.device));
        state.offlineAfter = o.offline_after || state.offlineAfter;
        mergeDevice(o.device, true);
      } catch (e) {
        this.latest.replaceChildren(el('p', 'muted', 'No live data for this device yet (' + e.message + ').'));
      }
      this.renderTabs();
      this.loadHistory();
    },
    dev() { return state.devices.get(key(this.r.site, this.r.device)); },
    renderTabs() {
      const d = this.dev();
      const names = d ? [...d.m.keys()].sort() : [];
      if (this.hist) for (const n of Object.keys(this.hist.series || {})) if (!names.includes(n) && NAME.test(n)) names.push(n);
      names.sort();
      if (!this.metric || !names.includes(this.metric)) this.metric = names[0] || null;
      this.tabs.replaceChildren(...names.map((n) => {
        const b = el('button', n === this.metric ? 'active' : '', n);
        b.type = 'button';
        b.setAttribute('role', 'tab');
        b.addEventListener('click', () => { this.metric = n; this.renderTabs(); this.draw(); });
        return b;
      }));
      this.latest.replaceChildren(...names.filter((n) => d && d.m.has(n)).map((n) => {
        const m = d.m.get(n);
        return el('div', 'tile', el('span', 'metric-name', n), el('span', 'value big', fmtNum(m.last && m.last[1]) + (m.unit ? ' ' + m.unit : '')),
          el('span', 'muted small', fmtTime(m.last && m.last[0])));
      }));
      this.second();
      this.draw();
    },
    async loadHistory() {
      const r = this.r, rg = this.range;
      this.csv.href = '/api/history/' + encodeURIComponent(r.site) + '/' + encodeURIComponent(r.device) + '?range=' + rg + '&format=csv';
      this.csv.download = r.site + '_' + r.device + '_' + rg + '.csv';
      this.histAt = Date.now();
      if (!this.hist) text(this.histInfo, 'loading…');
      try {
        const h = await getJSON('/api/history/' + encodeURIComponent(r.site) + '/' + encodeURIComponent(r.device) + '?range=' + rg);
        if (this.r !== r || this.range !== rg) return;
        this.hist = h;
        text(this.histInfo, 'from ' + h.measurement + ', ' + fmtNum(h.step / 1000) + ' s per point');
        this.renderTabs();
      } catch (e) {
        text(this.histInfo, 'history unavailable: ' + e.message);
      }
    },
    draw() {
      const d = this.dev();
      const m = d && this.metric && d.m.get(this.metric);
      const now = Date.now();
      const pts = m ? m.points : [];
      const last = pts.length ? pts[pts.length - 1][0] : now;
      const metric = this.metric || '', unit = (m && m.unit) || '';
      this.liveChart.setData(pts, { metric, unit, x0: Math.max(now, last) - LIVE_SPAN, x1: Math.max(now, last), maxGap: 5000,
        empty: this.metric ? 'waiting for readings…' : 'no metrics yet' });
      const h = this.hist;
      if (h) {
        const s = (this.metric && h.series[this.metric]) || [];
        this.histChart.setData(s, { metric, unit, x0: h.from, x1: h.to, maxGap: h.step * 2.5, empty: 'no windows in this range' });
      }
    },
    onDevices(batch) {
      let changed = false, newMetric = false;
      for (const u of batch.u) {
        if (u.site !== this.r.site || u.device !== this.r.device) continue;
        const before = this.dev() ? this.dev().m.size : 0;
        applyUpdate(u);
        newMetric = this.dev().m.size !== before;
        changed = true;
      }
      if (newMetric) this.renderTabs();
      else if (changed) schedule(() => { this.updateTiles(); this.draw(); });
    },
    updateTiles() {
      const d = this.dev();
      if (!d) return;
      const names = [...d.m.keys()].sort();
      [...this.latest.children].forEach((tile, i) => {
        const m = d.m.get(names[i]);
        if (!m) return;
        text(tile.children[1], fmtNum(m.last && m.last[1]) + (m.unit ? ' ' + m.unit : ''));
        text(tile.children[2], fmtTime(m.last && m.last[0]));
      });
    },
    second() {
      const d = this.dev();
      if (!d) return;
      const on = online(d);
      text(this.status, on ? 'online' : 'offline');
      this.status.className = 'status ' + (on ? 'on' : 'off');
      text(this.seen, 'seen ' + fmtAgo(d.seen));
      if (this.metric) this.draw();
      // New windows close all the time: refresh the history every step
      // (at least every 10 s; every 3 s while it is still empty).
      const empty = !this.hist || !Object.keys(this.hist.series || {}).length;
      const every = empty ? 3e3 : Math.max(10e3, this.hist.step || 0);
      if (this.histAt && Date.now() - this.histAt > every) this.loadHistory();
    },
  };

  // Alerts: current alerts by state and the history of changes.
  views.alerts = {
    topic: () => 'view=alerts',
    async load() {
      state.alerts = await getJSON('/api/alerts');
      renderBanner();
      this.render();
    },
    render() {
      const a = state.alerts;
      const sections = [el('div', 'page-head', el('h1', null, 'Alerts'))];
      const current = [...a.firing, ...a.pending, ...a.resolved];
      const cur = table(['state', 'severity', 'device', 'rule', 'value', 'threshold', 'since'], 'alerts-current');
      for (const x of current) cur.tBodies[0].append(alertRow(x, x.since || x.at));
      sections.push(el('section', 'panel', el('h2', null, 'Current'),
        current.length ? el('div', 'table-wrap', cur) : el('p', 'muted', 'No alerts. The notifier publishes alert changes on the ALERTS stream.')));
      const hist = table(['state', 'severity', 'device', 'rule', 'value', 'threshold', 'at'], 'alerts-history');
      for (const x of a.history || []) hist.tBodies[0].append(alertRow(x, x.at));
      sections.push(el('section', 'panel', el('h2', null, 'History'),
        (a.history || []).length ? el('div', 'table-wrap', hist) : el('p', 'muted', 'No alert changes yet.')));
      view().replaceChildren(el('div', 'alerts', ...sections));
    },
    onAlert() { this.render(); },
  };
  function alertRow(a, t) {
    return row(el('td', null, el('span', 'state state-' + a.state, a.state)),
      el('td', null, a.severity ? el('span', 'sev sev-' + a.severity, a.severity) : '–'),
      el('td', null, link(deviceHref(a.site, a.device), a.site + '/' + a.device)),
      a.rule, el('td', 'num', fmtNum(a.value)), el('td', 'num', fmtNum(a.threshold)), fmtTime(t, true));
  }

  // The dashboard's own build (edgeflow_build_info): version, revision on hover.
  function buildInfo(b) {
    const span = el('span', 'muted build', 'dashboard ' + ((b && b.version) || 'unknown'));
    if (b) span.title = 'revision ' + b.revision + ', ' + b.goversion;
    return span;
  }

  // The site's uplink to the hub (only when the dashboard has
  // EDGEFLOW_SITE_NAME): reachable or why not, and each exported stream's
  // backlog, the messages the hub does not have yet.
  const UPLINK_STATUS = { up: 'on', unreachable: 'off', misconfigured: 'off', failing: 'warn', checking: 'warn' };
  function uplinkPanel(u) {
    const st = el('span', 'status ' + (UPLINK_STATUS[u.state] || 'warn'), u.state === 'up' ? 'reachable' : u.state);
    const head = el('p', 'uplink-state', st, ' site ', el('span', 'mono', u.site), ' → hub domain ', el('span', 'mono', u.hub_domain),
      el('span', 'muted', ' · since ' + fmtTime(u.since, true) + ' · checked ' + (u.checked ? fmtTime(u.checked) : 'not yet')));
    const t = table(['stream', 'backlog', 'at the site', 'at the hub', 'problem'], 'uplink-streams');
    for (const s of u.streams || []) {
      t.tBodies[0].append(row(s.name, el('td', 'num' + (s.backlog > 0 ? ' pending' : ''), String(s.backlog)),
        el('td', 'num', String(s.site_seq)), el('td', 'num', String(s.hub_seq)), el('td', 'detail', s.problem || '')));
    }
    return el('section', 'panel uplink', el('h2', null, 'Uplink to hub'), head,
      u.error ? el('p', 'uplink-error', u.error) : null,
      u.state === 'unreachable' ? el('p', 'muted small', 'The site runs on; the hub takes the backlog when the link returns. The site\'s NATS server log says why the link is down.') : null,
      el('div', 'table-wrap', t));
  }

  // Pipeline: rates per service, stream backlogs, dead letters.
  views.pipeline = {
    topic: () => 'view=pipeline',
    async load() {
      view().replaceChildren(el('div', 'page-head', el('h1', null, 'Pipeline')), el('p', 'muted', 'Reading the services…'));
      try { this.render(await getJSON('/api/pipeline')); } catch (e) { /* the first snapshot arrives live */ }
    },
    onPipeline(h) { this.render(h); },
    render(h) {
      const svc = table(['service', 'status', 'in /s', 'out /s', 'dead-lettered /s', 'backlog', 'version'], 'services');
      for (const s of h.services || []) {
        const st = el('span', 'status ' + (s.ready ? 'on' : s.up ? 'warn' : 'off'), s.ready ? 'ready' : s.up ? 'not ready' : 'down');
        if (s.error) st.title = s.error;
        svc.tBodies[0].append(row(s.name, el('td', null, st), el('td', 'num', fmtRate(s.in_rate)), el('td', 'num', fmtRate(s.out_rate)),
          el('td', 'num', fmtRate(s.dead_rate)), el('td', 'num', fmtNum(s.backlog)), el('td', 'mono', s.version || '–')));
      }
      const str = table(['stream', 'messages', 'size', 'consumer backlog'], 'streams');
      for (const s of h.streams || []) {
        const cons = s.consumers.length ? s.consumers.map((c) => c.name + ': ' + c.pending + (c.ack_pending ? ' (+' + c.ack_pending + ' unacked)' : '')).join(', ') : '–';
        str.tBodies[0].append(row(s.name, el('td', 'num', s.exists ? String(s.msgs) : 'not created'), el('td', 'num', s.exists ? fmtBytes(s.bytes) : '–'), cons));
      }
      const dl = table(['time', 'service', 'topic', 'reason', 'detail', 'payload'], 'deadletters');
      for (const d of h.deadletters || []) {
        dl.tBodies[0].append(row(fmtTime(d.time, true), d.service, el('td', 'mono', d.topic), el('td', null, el('span', 'reason', d.reason)),
          el('td', 'detail', d.detail || ''), el('td', 'mono excerpt', d.excerpt + (d.size > d.excerpt.length ? ' … (' + fmtBytes(d.size) + ')' : ''))));
      }
      const tiles = el('div', 'latest',
        el('div', 'tile', el('span', 'metric-name', 'devices'), el('span', 'value big', String(h.devices))),
        el('div', 'tile', el('span', 'metric-name', 'dead letters'), el('span', 'value big', String(h.deadletter_count))),
        el('div', 'tile', el('span', 'metric-name', 'InfluxDB'), influxStatus(h.influxdb)),
        el('div', 'tile', el('span', 'metric-name', 'live viewers'), el('span', 'value big', String(h.clients))));
      view().replaceChildren(el('div', 'pipeline',
        el('div', 'page-head', el('h1', null, 'Pipeline'), el('span', 'muted', 'updated ' + fmtTime(h.at)), buildInfo(h.build)), tiles,
        h.uplink ? uplinkPanel(h.uplink) : null,
        el('section', 'panel', el('h2', null, 'Services'), (h.services || []).length ? el('div', 'table-wrap', svc)
          : el('p', 'muted', 'No services configured (EDGEFLOW_DASHBOARD_SERVICES).')),
        el('section', 'panel', el('h2', null, 'Streams'), el('div', 'table-wrap', str)),
        el('section', 'panel', el('h2', null, 'Latest dead letters'), (h.deadletters || []).length ? el('div', 'table-wrap', dl)
          : el('p', 'muted', 'Nothing dead-lettered.'))));
    },
  };

  // ---- routing and the live connection -----------------------------------
  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => { try { return decodeURIComponent(p); } catch { return ''; } });
    if (parts[0] === 'device' && NAME.test(parts[1] || '') && NAME.test(parts[2] || '')) return { name: 'device', site: parts[1], device: parts[2] };
    if (parts[0] === 'alerts') return { name: 'alerts' };
    if (parts[0] === 'pipeline') return { name: 'pipeline' };
    return { name: 'overview' };
  }

  function setConn(s) {
    const c = document.getElementById('conn');
    text(c, s);
    c.className = 'conn ' + s;
    c.title = 'live updates: ' + s;
  }

  function connect(r) {
    if (state.es) state.es.close();
    const v = views[r.name];
    const es = new EventSource('/api/events?' + v.topic(r));
    state.es = es;
    let opened = false;
    es.onopen = () => {
      setConn('live');
      // (Re)load the snapshot once subscribed, so nothing falls between.
      if (opened) resync();
      opened = true;
    };
    es.onerror = () => setConn(es.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting');
    es.addEventListener('devices', (e) => { if (state.route === r && v.onDevices) v.onDevices(JSON.parse(e.data)); });
    es.addEventListener('pipeline', (e) => { if (state.route === r && v.onPipeline) v.onPipeline(JSON.parse(e.data)); });
    es.addEventListener('alert', (e) => { applyAlert(JSON.parse(e.data)); if (state.route === r && v.onAlert) v.onAlert(); });
    es.addEventListener('resync', () => resync());
  }

  async function resync() {
    const r = state.route;
    try {
      await loadAlerts(r.name === 'alerts');
      await views[r.name].load(r);
    } catch (e) {
      view().replaceChildren(el('p', 'muted', 'Could not load: ' + e.message));
    }
  }

  async function loadAlerts(withHistory) {
    try {
      const a = await getJSON('/api/alerts' + (withHistory ? '' : '?history=0'));
      a.history = a.history || [];
      state.alerts = a;
      renderBanner();
    } catch (e) { /* the banner waits for the next change */ }
  }

  function route() {
    const r = parseRoute();
    state.route = r;
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === r.name || (r.name === 'device' && a.dataset.nav === 'overview'));
    document.title = (r.name === 'device' ? r.site + '/' + r.device : r.name) + ' · edgeflow';
    connect(r);
    resync();
  }

  window.addEventListener('hashchange', route);
  setInterval(() => { const v = views[state.route && state.route.name]; if (v && v.second) v.second(); }, 1000);
  let resizeTimer;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => {
    const r = state.route;
    if (r.name === 'device') { views.device.liveChart.resize(); views.device.histChart.resize(); }
    if (r.name === 'overview') for (const c of views.overview.cards.values()) if (c.visible) drawCard(c, true);
  }, 150); });
  route();
})();
