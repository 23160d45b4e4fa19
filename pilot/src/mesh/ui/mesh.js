// The live mesh page: polls /debug/mesh and redraws the graph and tables.
// Plain DOM and SVG, no framework; text goes through textContent only.
'use strict';

const POLL_MS = 2000;
const SVG_NS = 'http://www.w3.org/2000/svg';
const NODE_W = 210, HEAD_H = 40, ROW_H = 24, COL_W = 330, GAP = 28, PAD = 30;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function pct(x) { return x === null || x === undefined ? '–' : (100 * x).toFixed(x >= 0.995 || x === 0 ? 0 : 1) + '%'; }
function rate(x) { return x >= 10 ? x.toFixed(0) : x.toFixed(1); }

function setStatus(text, error) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = error ? 'error' : '';
}

function fillBody(table, rows, cols) {
  const body = document.querySelector('#' + table + ' tbody');
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = el('tr', { class: 'empty-row' });
    tr.appendChild(el('td', { colspan: String(cols) }, 'None.'));
    body.appendChild(tr);
  }
  for (const r of rows) body.appendChild(r);
}

// Columns by longest path from the nodes nothing sends to.
function layers(nodes, edges) {
  const depth = new Map(nodes.map(n => [n.id, 0]));
  for (let i = 0; i < nodes.length; i++) {
    let moved = false;
    for (const e of edges) {
      if (e.source === e.destination) continue;
      const d = depth.get(e.source) + 1;
      if (d > depth.get(e.destination) && d < nodes.length) { depth.set(e.destination, d); moved = true; }
    }
    if (!moved) break;
  }
  return depth;
}

function drawGraph(m) {
  const g = document.getElementById('graph');
  // Keep keyboard focus on the same node across redraws.
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.node : undefined;
  for (const c of Array.from(g.children)) if (c.tagName !== 'title' && c.tagName !== 'desc') c.remove();
  const nodes = m.nodes;
  if (nodes.length === 0) {
    g.setAttribute('viewBox', '0 0 720 80');
    g.appendChild(svg('text', { x: 20, y: 45, class: 'empty' }, 'No services yet.'));
    return;
  }
  const depth = layers(nodes, m.edges);
  const cols = new Map();
  for (const n of nodes) {
    const d = depth.get(n.id);
    if (!cols.has(d)) cols.set(d, []);
    cols.get(d).push(n);
  }
  const pos = new Map();
  let height = 0;
  for (const [d, list] of cols) {
    let y = PAD;
    for (const n of list) {
      const h = HEAD_H + Math.max(1, n.versions.length) * ROW_H + 8;
      pos.set(n.id, { x: PAD + d * COL_W, y, h });
      y += h + GAP;
    }
    height = Math.max(height, y);
  }
  const width = PAD * 2 + (Math.max(...cols.keys()) * COL_W) + NODE_W;
  g.setAttribute('viewBox', `0 0 ${width} ${height}`);
  g.style.maxHeight = Math.max(height, 200) + 'px';
  const defs = svg('defs');
  for (const [id, color] of [['arrow', '#1f4e8c'], ['arrow-warn', '#8a5000'], ['arrow-bad', '#b00020'], ['arrow-idle', '#8a94a0']]) {
    const mk = svg('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 11, markerHeight: 11, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' });
    mk.appendChild(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: color }));
    defs.appendChild(mk);
  }
  g.appendChild(defs);
  const anchor = (id, version, side) => {
    const p = pos.get(id);
    const n = nodes.find(x => x.id === id);
    const i = n.versions.indexOf(version);
    const y = i < 0 ? p.y + HEAD_H / 2 : p.y + HEAD_H + i * ROW_H + ROW_H / 2;
    return { x: side === 'out' ? p.x + NODE_W : p.x, y };
  };
  const edgeLayer = svg('g', { class: 'edges' });
  const labelLayer = svg('g', { class: 'labels' });
  for (const e of m.edges) {
    if (!pos.has(e.source) || !pos.has(e.destination)) continue;
    const a = anchor(e.source, e.sourceVersion, 'out');
    const b = anchor(e.destination, e.destinationVersion, 'in');
    const dx = Math.max(60, Math.abs(b.x - a.x) / 2);
    const kind = e.rps <= 0 ? 'idle' : (e.errorRate || 0) >= 0.05 ? 'bad' : (e.errorRate || 0) > 0 ? 'warn' : '';
    const w = e.rps > 0 ? Math.min(6, 1.5 + Math.log10(1 + e.rps) * 2) : 1.5;
    const path = svg('path', {
      class: 'edge ' + kind,
      d: `M ${a.x} ${a.y} C ${a.x + dx} ${a.y}, ${b.x - dx} ${b.y}, ${b.x - 4} ${b.y}`,
      'stroke-width': w.toFixed(1),
      'marker-end': `url(#arrow${kind ? '-' + kind : ''})`,
    });
    path.appendChild(svg('title', {}, edgeText(e)));
    edgeLayer.appendChild(path);
    let label = `${rate(e.rps)} rps · ${pct(e.share)}`;
    if (e.errorRate > 0) label += ` · ${pct(e.errorRate)} err`;
    labelLayer.appendChild(svg('text', { class: 'edge-label', x: b.x - 16, y: b.y - 9, 'text-anchor': 'end' }, label));
  }
  g.appendChild(edgeLayer);
  for (const n of nodes) {
    const p = pos.get(n.id);
    const vs = n.versions.length ? n.versions.join(', ') : 'no versions';
    const grp = svg('g', { class: 'node', tabindex: '0', role: 'group', 'aria-label': `${n.name} in ${n.namespace || 'no namespace'}: ${vs}`, 'data-node': n.id });
    grp.appendChild(svg('rect', { class: 'box', x: p.x, y: p.y, width: NODE_W, height: p.h, rx: 6 }));
    grp.appendChild(svg('text', { class: 'name', x: p.x + 10, y: p.y + 18 }, n.name));
    grp.appendChild(svg('text', { class: 'ns', x: p.x + 10, y: p.y + 33 }, n.namespace + (n.kind === 'workload' ? ' · workload' : '')));
    n.versions.forEach((v, i) => {
      const y = p.y + HEAD_H + i * ROW_H;
      grp.appendChild(svg('rect', { class: 'version', x: p.x + 8, y: y + 2, width: NODE_W - 16, height: ROW_H - 4, rx: 3 }));
      grp.appendChild(svg('text', { class: 'version', x: p.x + 16, y: y + 16 }, v));
    });
    g.appendChild(grp);
  }
  g.appendChild(labelLayer);
  if (focused) {
    const again = g.querySelector(`[data-node="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function edgeText(e) {
  const to = e.destination + (e.destinationVersion ? ' ' + e.destinationVersion : '');
  const from = e.source + (e.sourceVersion ? ' ' + e.sourceVersion : '');
  return `${from} → ${to}: ${rate(e.rps)} requests/s, ${pct(e.share)} of its requests to ${e.host}, ${pct(e.errorRate)} errors`;
}

function drawEdges(m) {
  const rows = m.edges.map(e => {
    const tr = el('tr', {
      'data-source': e.source, 'data-source-version': e.sourceVersion,
      'data-destination': e.destination, 'data-version': e.destinationVersion,
      'data-rps': String(e.rps), 'data-share': e.share === null ? '' : String(e.share),
      'data-error-rate': e.errorRate === null ? '' : String(e.errorRate),
    });
    tr.appendChild(el('td', {}, e.source + (e.sourceVersion ? ' ' + e.sourceVersion : '')));
    tr.appendChild(el('td', {}, e.destination));
    tr.appendChild(el('td', {}, e.destinationVersion || 'any'));
    tr.appendChild(el('td', { class: 'num' }, rate(e.rps)));
    tr.appendChild(el('td', { class: 'num' }, pct(e.share)));
    tr.appendChild(el('td', { class: 'num' }, pct(e.errorRate)));
    return tr;
  });
  fillBody('edges', rows, 6);
}

const STATE_CLASS = { 'SYNCED': 'state-synced', 'STALE': 'state-stale', 'STALE (NACK)': 'state-nack', 'NOT SENT': 'state-notsent' };

function drawProxies(m) {
  const nacks = document.getElementById('nacks');
  nacks.replaceChildren();
  const rows = m.proxies.map(p => {
    const tr = el('tr', { 'data-proxy': p.name });
    tr.appendChild(el('th', { scope: 'row' }, p.name));
    tr.appendChild(el('td', {}, p.kind));
    for (const t of ['CDS', 'LDS', 'EDS', 'RDS']) {
      const s = p.states[t] || 'NOT SENT';
      tr.appendChild(el('td', { class: STATE_CLASS[s] || '' }, s));
    }
    tr.appendChild(el('td', {}, p.version));
    for (const n of p.nacks) nacks.appendChild(el('li', {}, `${p.name} ${n.type} rejected: ${n.error}`));
    return tr;
  });
  fillBody('proxies', rows, 7);
}

function drawFindings(m) {
  const rows = m.findings.map(f => {
    const tr = el('tr', { 'data-severity': f.severity });
    tr.appendChild(el('td', { class: 'sev-' + f.severity }, f.severity));
    tr.appendChild(el('td', {}, f.file || '–'));
    tr.appendChild(el('td', { class: 'num' }, f.line === null || f.line === undefined ? '–' : String(f.line)));
    tr.appendChild(el('td', {}, f.object));
    tr.appendChild(el('td', {}, f.field || '–'));
    tr.appendChild(el('td', {}, f.message));
    return tr;
  });
  fillBody('findings', rows, 6);
}

function drawRules(m) {
  const box = document.getElementById('rules');
  box.replaceChildren();
  for (const s of m.services) {
    const div = el('div', { class: 'service-rules', 'data-service': s.id });
    div.appendChild(el('h3', {}, s.id));
    if (s.rules.length === 0) {
      div.appendChild(el('p', { class: 'hint' }, 'No route rules: requests are balanced over every endpoint.'));
    }
    for (const r of s.rules) {
      div.appendChild(el('p', {}, r.source));
      const ol = el('ol');
      for (const line of r.routes) ol.appendChild(el('li', {}, line));
      div.appendChild(ol);
    }
    box.appendChild(div);
  }
}

function render(m) {
  const src = m.metrics.source === 'sidecars'
    ? `Rates over the last ${m.metrics.windowSeconds} s, from each proxy's Envoy stats.`
    : `Rates over the last ${m.metrics.windowSeconds} s, from ${m.metrics.source.replace(/^prometheus /, 'Prometheus at ')}.`;
  document.getElementById('metrics-source').textContent = src + (m.metrics.error ? ` Last read failed: ${m.metrics.error}` : '');
  drawGraph(m);
  drawEdges(m);
  drawProxies(m);
  drawFindings(m);
  drawRules(m);
}

async function refresh() {
  try {
    const r = await fetch('/debug/mesh', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}: ${(await r.text()).trim()}`);
    const m = await r.json();
    render(m);
    const synced = m.proxies.filter(p => Object.values(p.states).every(s => s === 'SYNCED')).length;
    setStatus(`config ${m.configVersion.slice(0, 12)} · ${m.proxies.length} proxies, ${synced} synced · ${m.findings.length} findings · updated ${new Date().toLocaleTimeString()}`, false);
  } catch (e) {
    setStatus(`Cannot read /debug/mesh: ${e.message}`, true);
  } finally {
    setTimeout(refresh, POLL_MS);
  }
}

refresh();
