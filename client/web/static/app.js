// lifenet in the browser: the world on a canvas, the palette, the scoreboard.
// Talks to the gateway over one WebSocket: JSON text for events and requests, one
// binary message a generation for the cells (docs/protocol.md, "The browser's
// WebSocket"). No build step, nothing from elsewhere.
"use strict";

(() => {
  const KEY = 1, DELTA = 2, HEADER = 32;
  const MIN_ZOOM = 0.25, MAX_ZOOM = 40;
  const $ = (id) => document.getElementById(id);

  const S = {
    ws: null, connected: false, backoff: 500, closedByUs: false,
    H: 0, W: 0, gen: -1, info: {}, frames: 0, keys: 0, deltas: 0,
    region: [0, 0, 0, 0],          // what the tab holds: y, x, h, w on the torus
    cells: null,                   // its codes (Uint8Array or Uint16Array), h * w
    regional: false, maxRegion: 2048, asked: null,
    palette: ["#1c1c1c", "#808080"], players: ["#ffff00"], lut: null,
    policies: ["follow", "defend", "border"],
    me: null, standing: {}, wantJoin: false, placed: [],
    patterns: [], shown: [], sel: 0, rotate: 0, flip: false,
    zoom: 4, cam: { y: 0, x: 0 }, fitted: false,
    mouse: null, drag: null, dirty: true, imageDirty: true, draws: 0, drawMs: 0,
  };

  const canvas = $("world");
  const ctx = canvas.getContext("2d");
  let off = document.createElement("canvas");
  let offCtx = off.getContext("2d");
  let image = null, pixels = null;

  // -- colours ---------------------------------------------------------------------------

  function rgba32(hex) {
    const v = parseInt(hex.slice(1), 16);
    // ImageData is RGBA in memory: little-endian Uint32 is 0xAABBGGRR
    return (0xff000000 | ((v & 0xff) << 16) | (v & 0xff00) | ((v >> 16) & 0xff)) >>> 0;
  }

  function buildLut() {
    const lut = new Uint32Array(65536);
    const n = S.players.length;
    const players = S.players.map(rgba32);
    lut[0] = rgba32(S.palette[0]);
    lut[1] = rgba32(S.palette[1]);
    for (let c = 2; c < 65536; c++) lut[c] = players[(c - 2) % n];
    S.lut = lut;
  }
  buildLut();

  function colourOfCode(code) {
    if (code < 2) return S.palette[code];
    return S.players[(code - 2) % S.players.length];
  }
  const colourOfPlayer = (p) => colourOfCode(p + 1);

  // -- the connection --------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    S.ws = ws;
    setLink("connecting…", "muted");
    ws.onopen = () => {
      S.connected = true;
      S.backoff = 500;
      setLink("connected", "good");
      if (S.gen < 0) $("status").textContent = "waiting for the first generation from the server…";
      S.asked = null;
      const token = sessionStorage.getItem("lifenet.token");
      const name = sessionStorage.getItem("lifenet.name");
      if (S.wantJoin || (token && name)) {
        send({ type: "join", name: name || $("name").value, token: token || undefined,
               policy: sessionStorage.getItem("lifenet.policy") || "follow" });
      }
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") onEvent(JSON.parse(e.data));
      else onCells(e.data);
    };
    ws.onclose = () => {
      S.connected = false;
      if (S.ws !== ws) return;
      const wait = S.backoff;
      S.backoff = Math.min(S.backoff * 2, 5000);
      setLink(`offline: reconnecting in ${(wait / 1000).toFixed(1)} s`, "bad");
      setTimeout(connect, wait);
    };
  }

  function send(msg) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) {
      S.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  function setLink(text, cls) {
    const el = $("link");
    el.textContent = text;
    el.className = cls;
  }

  // -- events ----------------------------------------------------------------------------

  function onEvent(ev) {
    switch (ev.type) {
      case "hello":
        S.palette = ev.palette; S.players = ev.players; S.policies = ev.policies;
        S.maxRegion = ev.max_region;
        buildLut();
        fillPolicies();
        S.imageDirty = true;
        onWorld(ev);
        break;
      case "world":
        onWorld(ev);
        break;
      case "joined": {
        S.me = ev; S.wantJoin = false;
        sessionStorage.setItem("lifenet.token", ev.token);
        sessionStorage.setItem("lifenet.name", ev.name);
        S.standing = { energy: ev.energy };
        $("join").hidden = true; $("me").hidden = false;
        $("me-name").textContent = ev.name;
        $("me-swatch").style.background = colourOfCode(ev.code);
        if (ev.why) note(ev.why, "bad");
        else note(ev.rejoined ? `back as ${ev.name} (player ${ev.player})`
                              : `joined as ${ev.name}: your colour`, "good",
                  colourOfCode(ev.code));
        if (ev.goal) note(ev.goal);
        renderMe(); renderPalette();
        break;
      }
      case "standing":
        S.standing = Object.assign(S.standing, ev);
        renderMe();
        break;
      case "placed":
        S.placed.push(ev);
        note(`${ev.pattern} placed at ${ev.y},${ev.x}: ${ev.cells} cells for ${ev.cost} ` +
             `energy, lands in generation ${ev.generation}`, "good");
        S.standing.energy = ev.energy; renderMe();
        break;
      case "landed":
        note(`landed in generation ${ev.generation}: ${ev.placed} of ${ev.cells} cells` +
             (ev.occupied ? `, ${ev.occupied} occupied (refunded)` : ""),
             ev.occupied ? "bad" : "");
        break;
      case "refused":
        note(`not placed: ${ev.reason}`, "bad", null, true);
        break;
      case "error":
        note(ev.reason, "bad", null, true);
        break;
      case "failed":
        note(ev.reason, "bad", null, true);
        leftGame(false);
        break;
      case "left":
        leftGame(true);
        break;
      case "policy":
        sessionStorage.setItem("lifenet.policy", ev.policy);
        $("policy").value = ev.policy;
        break;
    }
  }

  function onWorld(ev) {
    // a large world comes as the region in view: say it once the size is known
    S.regional = ev.regional;
    S.asked = null;
    if (ev.size && (ev.size[0] !== S.H || ev.size[1] !== S.W)) S.fitted = false;
  }

  function leftGame(clear) {
    S.me = null;
    if (clear) sessionStorage.removeItem("lifenet.token");
    $("join").hidden = false; $("me").hidden = true;
    renderPalette();
  }

  // -- cells -----------------------------------------------------------------------------

  function onCells(buf) {
    const dv = new DataView(buf);
    const kind = dv.getUint8(0), width = dv.getUint8(1);
    const gen = dv.getUint32(4, true), base = dv.getUint32(8, true);
    const H = dv.getUint16(12, true), W = dv.getUint16(14, true);
    const ry = dv.getUint16(16, true), rx = dv.getUint16(18, true);
    const rh = dv.getUint16(20, true), rw = dv.getUint16(22, true);
    const count = dv.getUint32(24, true), infoLen = dv.getUint32(28, true);
    let at = HEADER;
    const info = infoLen ? JSON.parse(new TextDecoder().decode(new Uint8Array(buf, at, infoLen))) : {};
    at += infoLen;
    const Codes = width === 2 ? Uint16Array : Uint8Array;
    if (kind === KEY) {
      if (H !== S.H || W !== S.W) { S.H = H; S.W = W; S.fitted = false; }
      S.region = [ry, rx, rh, rw];
      S.cells = new Codes(buf.slice(at, at + count * width));
      resizeImage(rh, rw);
      S.keys++;
    } else if (kind === DELTA) {
      if (!S.cells || base !== S.gen) return; // a gap: the gateway sends a key next
      const index = new Uint32Array(buf, at, count);
      at += 4 * count;
      const codes = new Codes(buf.slice(at, at + count * width));
      if (width === 2 && !(S.cells instanceof Uint16Array)) S.cells = Uint16Array.from(S.cells);
      const [y0, x0, h, w] = S.region;
      const whole = h === S.H && w === S.W && y0 === 0 && x0 === 0;
      for (let i = 0; i < count; i++) {
        const idx = index[i];
        let local = idx;
        if (!whole) {
          const ly = ((Math.floor(idx / S.W) - y0) % S.H + S.H) % S.H;
          const lx = ((idx % S.W - x0) % S.W + S.W) % S.W;
          if (ly >= h || lx >= w) continue;
          local = ly * w + lx;
        }
        S.cells[local] = codes[i];
        pixels[local] = S.lut[codes[i]];
      }
      S.deltas++;
    } else {
      return;
    }
    S.gen = gen; S.info = info; S.frames++;
    if (kind === KEY) S.imageDirty = true; else S.pixelsDirty = true;
    if (!S.fitted && S.W) fit();
    S.dirty = true;
    renderInfo();
  }

  function resizeImage(h, w) {
    if (off.width !== w || off.height !== h) { off.width = w; off.height = h; }
    image = offCtx.createImageData(w, h);
    pixels = new Uint32Array(image.data.buffer);
  }

  function paintImage() {
    if (!image) return;
    if (S.imageDirty) {
      const lut = S.lut, cells = S.cells;
      for (let i = 0; i < cells.length; i++) pixels[i] = lut[cells[i]];
      S.imageDirty = false;
    }
    offCtx.putImageData(image, 0, 0);
    S.pixelsDirty = false;
  }

  // -- the view --------------------------------------------------------------------------

  function fit() {
    const r = canvas.getBoundingClientRect();
    // the whole world on the screen; a large one (its region in view) no smaller than
    // two pixels a cell
    const whole = Math.min(r.width / S.W, r.height / S.H);
    S.zoom = clampZoom(S.regional ? Math.max(whole, 2) : whole);
    S.cam = { y: S.H / 2, x: S.W / 2 };
    S.fitted = true;
    S.dirty = true;
    askRegion();
  }

  function clampZoom(z) {
    let lo = MIN_ZOOM;
    if (S.regional) {
      const r = canvas.getBoundingClientRect();
      lo = Math.max(lo, Math.max(r.width, r.height) / (S.maxRegion - 64));
    }
    return Math.max(lo, Math.min(MAX_ZOOM, z));
  }

  function cellAt(px, py) {
    const r = canvas.getBoundingClientRect();
    const x = Math.floor(S.cam.x + (px - r.width / 2) / S.zoom);
    const y = Math.floor(S.cam.y + (py - r.height / 2) / S.zoom);
    return { y: mod(y, S.H), x: mod(x, S.W) };
  }

  function screenOf(y, x) {
    // the centre of cell (y, x) on the canvas (the copy of the torus nearest the camera)
    const r = canvas.getBoundingClientRect();
    const dy = nearest(y + 0.5 - S.cam.y, S.H), dx = nearest(x + 0.5 - S.cam.x, S.W);
    return { x: r.left + r.width / 2 + dx * S.zoom, y: r.top + r.height / 2 + dy * S.zoom };
  }

  const mod = (a, n) => ((a % n) + n) % n;
  const nearest = (d, n) => d - n * Math.round(d / n);

  function askRegion() {
    if (!S.regional || !S.W) return;
    const r = canvas.getBoundingClientRect();
    const margin = 32;
    const h = Math.min(S.H, S.maxRegion, Math.ceil(r.height / S.zoom) + 2 * margin);
    const w = Math.min(S.W, S.maxRegion, Math.ceil(r.width / S.zoom) + 2 * margin);
    const y = mod(Math.floor(S.cam.y - h / 2), S.H), x = mod(Math.floor(S.cam.x - w / 2), S.W);
    const a = S.asked;
    if (a) {
      // still inside what was asked, with room to spare: nothing to say
      const inY = mod(Math.floor(S.cam.y - r.height / 2 / S.zoom) - a[0], S.H) + r.height / S.zoom <= a[2];
      const inX = mod(Math.floor(S.cam.x - r.width / 2 / S.zoom) - a[1], S.W) + r.width / S.zoom <= a[3];
      if (inY && inX && a[2] >= h - 2 * margin && a[3] >= w - 2 * margin) return;
    }
    S.asked = [y, x, h, w];
    send({ type: "view", y, x, h, w });
  }

  function draw() {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.round(r.width * dpr), ch = Math.round(r.height * dpr);
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#0c0c0c";
    ctx.fillRect(0, 0, r.width, r.height);
    if (!S.cells || !S.W) return;
    if (S.imageDirty || S.pixelsDirty) paintImage();
    ctx.imageSmoothingEnabled = false;
    const [ry, rx, rh, rw] = S.region;
    const z = S.zoom;
    const left = r.width / 2 - S.cam.x * z, top = r.height / 2 - S.cam.y * z;
    // every copy of the region on the torus that reaches the screen
    const k0 = Math.floor((-left / z - rx - rw) / S.W) + 1, k1 = Math.floor((r.width - left) / z / S.W - rx / S.W);
    const l0 = Math.floor((-top / z - ry - rh) / S.H) + 1, l1 = Math.floor((r.height - top) / z / S.H - ry / S.H);
    // a world smaller than the screen shows its repeats on the torus dimmed
    const repeats = S.W * z < r.width || S.H * z < r.height;
    for (let l = l0; l <= l1; l++) {
      for (let k = k0; k <= k1; k++) {
        ctx.globalAlpha = repeats && (k !== 0 || l !== 0) ? 0.45 : 1;
        ctx.drawImage(off, left + (rx + k * S.W) * z, top + (ry + l * S.H) * z, rw * z, rh * z);
      }
    }
    ctx.globalAlpha = 1;
    drawShields(left, top, z, r);
    drawGhost(left, top, z);
    if (z >= 8) drawGrid(left, top, z, r);
  }

  function drawGrid(left, top, z, r) {
    ctx.strokeStyle = "rgba(255,255,255,0.05)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let x = mod(left, z); x < r.width; x += z) { ctx.moveTo(x, 0); ctx.lineTo(x, r.height); }
    for (let y = mod(top, z); y < r.height; y += z) { ctx.moveTo(0, y); ctx.lineTo(r.width, y); }
    ctx.stroke();
  }

  function drawShields(left, top, z, r) {
    const shields = S.info.shields || [];
    ctx.lineWidth = 1;
    for (const [y, x, h, w, , player] of shields) {
      ctx.strokeStyle = colourOfPlayer(player);
      ctx.globalAlpha = 0.6;
      const sx = left + x * z, sy = top + y * z;
      for (const dy of [-S.H, 0, S.H]) for (const dx of [-S.W, 0, S.W]) {
        const px = sx + dx * z, py = sy + dy * z;
        if (px > r.width || py > r.height || px + w * z < 0 || py + h * z < 0) continue;
        ctx.setLineDash([4, 3]);
        ctx.strokeRect(px + 0.5, py + 0.5, w * z - 1, h * z - 1);
      }
    }
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
  }

  // -- patterns --------------------------------------------------------------------------

  function oriented(p, rotate, flip) {
    // Pattern.oriented: mirrored left-right first, then turned clockwise
    let h = p.h, w = p.w;
    let cells = p.cells.map(([y, x]) => [y, flip ? w - 1 - x : x]);
    for (let q = 0; q < rotate; q++) {
      cells = cells.map(([y, x]) => [x, h - 1 - y]);
      [h, w] = [w, h];
    }
    return { h, w, cells };
  }

  function selected() { return S.shown.length ? S.patterns[S.shown[S.sel]] : null; }

  function ghostCorner(at, o) {
    return { y: mod(at.y - Math.floor(o.h / 2), S.H), x: mod(at.x - Math.floor(o.w / 2), S.W) };
  }

  function drawGhost(left, top, z) {
    const p = selected();
    if (!S.me || !p || !S.mouse || S.drag) return;
    const o = oriented(p, S.rotate, S.flip);
    const c = ghostCorner(S.mouse, o);
    const colour = colourOfCode(S.me.code);
    const affordable = (S.standing.energy ?? 0) >= o.cells.length;
    // the copy of the mouse's cell nearest the camera, and the ghost around it
    const mY = S.cam.y + nearest(S.mouse.y + 0.5 - S.cam.y, S.H) - 0.5;
    const mX = S.cam.x + nearest(S.mouse.x + 0.5 - S.cam.x, S.W) - 0.5;
    ctx.globalAlpha = 0.6;
    for (const [dy, dx] of o.cells) {
      const y = mod(c.y + dy, S.H), x = mod(c.x + dx, S.W);
      const busy = codeAt(y, x) !== 0;
      ctx.fillStyle = busy ? "#ff0000" : affordable ? colour : "#870000";
      const sy = top + (mY + nearest(y - S.mouse.y, S.H)) * z;
      const sx = left + (mX + nearest(x - S.mouse.x, S.W)) * z;
      ctx.fillRect(sx, sy, Math.max(z, 1), Math.max(z, 1));
    }
    ctx.globalAlpha = 1;
  }

  function codeAt(y, x) {
    if (!S.cells) return 0;
    const [ry, rx, rh, rw] = S.region;
    const ly = mod(y - ry, S.H), lx = mod(x - rx, S.W);
    if (ly >= rh || lx >= rw) return 0;
    return S.cells[ly * rw + lx];
  }

  async function loadPatterns() {
    try {
      const r = await fetch("/patterns.json");
      S.patterns = await r.json();
    } catch (e) {
      note(`could not load the patterns: ${e}`, "bad");
      return;
    }
    filterPatterns();
  }

  function filterPatterns() {
    const q = $("search").value.trim().toLowerCase().replace(/[-_]/g, " ");
    S.shown = S.patterns.map((p, i) => [p, i])
      .filter(([p]) => !q || (p.name + " " + p.title).toLowerCase().replace(/[-_]/g, " ").includes(q))
      .map(([, i]) => i);
    S.sel = Math.min(S.sel, Math.max(0, S.shown.length - 1));
    renderPalette();
  }

  function renderPalette() {
    const box = $("palette");
    box.textContent = "";
    const colour = S.me ? colourOfCode(S.me.code) : "#bbbbbb";
    S.shown.forEach((i, n) => {
      const p = S.patterns[i];
      const b = document.createElement("button");
      b.type = "button";
      b.title = `${p.title} (${p.cells.length} cells)`;
      b.dataset.pattern = p.name;
      if (n === S.sel) b.className = "selected";
      const c = document.createElement("canvas");
      const o = oriented(p, n === S.sel ? S.rotate : 0, n === S.sel ? S.flip : false);
      preview(c, o, colour);
      const label = document.createElement("span");
      label.textContent = `${p.name} · ${p.cells.length}`;
      b.append(c, label);
      b.onclick = () => { S.sel = n; renderPalette(); canvas.focus(); };
      box.append(b);
    });
    const p = selected();
    $("orientation").textContent = p
      ? `${p.name}, ${S.rotate * 90}°${S.flip ? ", flipped" : ""}` : "";
  }

  function preview(c, o, colour) {
    const cw = 48, ch = 36;
    c.width = cw; c.height = ch;
    const g = c.getContext("2d");
    g.fillStyle = "#1c1c1c"; g.fillRect(0, 0, cw, ch);
    const s = Math.max(0.5, Math.min((cw - 4) / o.w, (ch - 4) / o.h, 6));
    const ox = (cw - o.w * s) / 2, oy = (ch - o.h * s) / 2;
    g.fillStyle = colour;
    for (const [y, x] of o.cells) g.fillRect(ox + x * s, oy + y * s, Math.max(s - (s > 2 ? 0.5 : 0), 0.5), Math.max(s - (s > 2 ? 0.5 : 0), 0.5));
  }

  function place(at) {
    const p = selected();
    if (!p) return;
    if (!S.me) { note("join to place patterns", "bad", null, true); return; }
    const o = oriented(p, S.rotate, S.flip);
    const c = ghostCorner(at, o);
    send({ type: "place", pattern: p.name, y: c.y, x: c.x, rotate: S.rotate, flip: S.flip });
  }

  // -- the panel -------------------------------------------------------------------------

  function fillPolicies() {
    const sel = $("policy");
    sel.textContent = "";
    for (const p of S.policies) {
      const o = document.createElement("option");
      o.value = o.textContent = p;
      sel.append(o);
    }
    sel.value = sessionStorage.getItem("lifenet.policy") || "follow";
  }

  function renderMe() {
    if (!S.me) return;
    const s = S.standing, cap = S.me.energy_cap || 1;
    $("energy-bar").style.width = `${Math.min(100, 100 * (s.energy ?? 0) / cap)}%`;
    const parts = [`energy ${s.energy ?? "?"} / ${cap}`];
    if (s.rank) parts.push(`rank ${s.rank} of ${s.ranked}`);
    if (s.cells !== undefined) parts.push(`${s.cells} cells`);
    if (s.points) parts.push(`${s.points} points`);
    if (s.spent) parts.push(`drain ${s.spent - (s.regen || 0)}/gen`);
    $("me-line").textContent = parts.join(" · ");
    $("me-trouble").textContent = s.trouble || "";
    if (s.policy) $("policy").value = s.policy;
  }

  let lastInfo = 0, infoTimer = 0;
  function renderInfo() {
    // ten times a second is plenty for text; the last one always shows
    const now = performance.now();
    if (now - lastInfo < 100) {
      if (!infoTimer) infoTimer = setTimeout(() => { infoTimer = 0; renderInfo(); }, 100);
      return;
    }
    lastInfo = now;
    const i = S.info;
    const ms = typeof i.ms === "number" ? i.ms.toFixed(1) : "?";
    $("status").textContent = `generation ${S.gen} · ${ms} ms/gen · ${i.workers ?? "?"} ` +
      `workers · ${i.players ?? 0} players · population ${i.population ?? "?"} · ` +
      `${S.H}×${S.W} ${i.rule ?? ""}`;
    const board = i.board || [];
    const away = new Set(i.away || []);
    const points = new Map((i.round && i.round.points) || []);
    const table = $("board");
    table.classList.toggle("rounds", !!i.round);
    const body = table.tBodies[0];
    body.textContent = "";
    if (!board.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td colspan="5" class="muted">nobody owns a cell yet: join and place one</td>';
      body.append(tr);
    }
    board.forEach(([player, name, cells], n) => {
      const tr = document.createElement("tr");
      if (S.me && player === S.me.player) tr.classList.add("mine");
      if (away.has(player)) tr.classList.add("away");
      const sw = `<span class="swatch" style="background:${colourOfPlayer(player)}"></span>`;
      tr.innerHTML = `<td>${n + 1}</td><td>${sw}</td><td></td><td>${cells}</td>` +
        `<td class="points">${points.get(player) ?? 0}</td>`;
      tr.children[2].textContent = name;
      body.append(tr);
    });
    if (i.round) {
      $("round").textContent = `round ${i.round.number}, ends at ${i.round.ends_at}`;
      const last = (i.round.last || [])[0];
      $("winners").textContent = last ? (last.winner
        ? `round ${last.round} won by ${last.winner} (${last.points} points)`
        : `nobody won round ${last.round}`) : "";
    } else {
      $("round").textContent = ""; $("winners").textContent = "";
    }
  }

  let toastTimer = 0;
  function note(text, cls = "", swatch = null, toast = false) {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = text;
    if (swatch) {
      const s = document.createElement("span");
      s.className = "swatch"; s.style.background = swatch;
      li.append(" ", s);
    }
    const list = $("messages");
    list.prepend(li);
    while (list.children.length > 30) list.lastChild.remove();
    if (toast) {
      const t = $("toast");
      t.textContent = text; t.className = cls; t.style.display = "block";
      clearTimeout(toastTimer);
      toastTimer = setTimeout(() => { t.style.display = "none"; }, 4000);
    }
  }

  // -- input -----------------------------------------------------------------------------

  canvas.addEventListener("mousemove", (e) => {
    const r = canvas.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    if (S.drag) {
      const dx = px - S.drag.px, dy = py - S.drag.py;
      if (Math.abs(dx) + Math.abs(dy) > 3) S.drag.moved = true;
      if (S.drag.moved) {
        S.cam.x = S.drag.cx - dx / S.zoom;
        S.cam.y = S.drag.cy - dy / S.zoom;
        askRegion();
      }
    }
    if (S.W) S.mouse = cellAt(px, py);
    S.dirty = true;
  });
  canvas.addEventListener("mouseleave", () => { S.mouse = null; S.drag = null; S.dirty = true; });
  canvas.addEventListener("mousedown", (e) => {
    if (e.button !== 0) return;
    const r = canvas.getBoundingClientRect();
    S.drag = { px: e.clientX - r.left, py: e.clientY - r.top, cx: S.cam.x, cy: S.cam.y, moved: false };
    canvas.focus();
  });
  canvas.addEventListener("mouseup", (e) => {
    const d = S.drag;
    S.drag = null;
    if (d && !d.moved && S.W) {
      const r = canvas.getBoundingClientRect();
      place(cellAt(e.clientX - r.left, e.clientY - r.top));
    }
    S.dirty = true;
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });

  function zoomAt(f, px, py) {
    const r = canvas.getBoundingClientRect();
    const wx = S.cam.x + (px - r.width / 2) / S.zoom, wy = S.cam.y + (py - r.height / 2) / S.zoom;
    S.zoom = clampZoom(S.zoom * f);
    S.cam.x = wx - (px - r.width / 2) / S.zoom;
    S.cam.y = wy - (py - r.height / 2) / S.zoom;
    S.dirty = true;
    askRegion();
  }

  window.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    const step = 40 / S.zoom;
    const r = canvas.getBoundingClientRect();
    switch (e.key) {
      case "ArrowLeft": case "a": S.cam.x -= step; break;
      case "ArrowRight": case "d": S.cam.x += step; break;
      case "ArrowUp": case "w": S.cam.y -= step; break;
      case "ArrowDown": case "s": S.cam.y += step; break;
      case "+": case "=": zoomAt(1.25, r.width / 2, r.height / 2); break;
      case "-": case "_": zoomAt(0.8, r.width / 2, r.height / 2); break;
      case "0": fit(); break;
      case "r": S.rotate = (S.rotate + 1) % 4; renderPalette(); break;
      case "f": S.flip = !S.flip; renderPalette(); break;
      case "]": S.sel = (S.sel + 1) % Math.max(1, S.shown.length); renderPalette(); break;
      case "[": S.sel = (S.sel + S.shown.length - 1) % Math.max(1, S.shown.length); renderPalette(); break;
      default: return;
    }
    e.preventDefault();
    S.dirty = true;
    askRegion();
  });

  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("name").value.trim();
    if (!name) return;
    sessionStorage.setItem("lifenet.name", name);
    sessionStorage.removeItem("lifenet.token");
    S.wantJoin = true;
    send({ type: "join", name, policy: $("policy").value || "follow" });
  });
  $("leave").addEventListener("click", () => {
    send({ type: "leave" });
    sessionStorage.removeItem("lifenet.token");
    leftGame(true);
    note("you left: your cells turn neutral after the server's grace period");
  });
  $("policy").addEventListener("change", () => send({ type: "policy", policy: $("policy").value }));
  $("rotate").addEventListener("click", () => { S.rotate = (S.rotate + 1) % 4; renderPalette(); });
  $("flip").addEventListener("click", () => { S.flip = !S.flip; renderPalette(); });
  $("search").addEventListener("input", filterPatterns);
  window.addEventListener("resize", () => { S.dirty = true; askRegion(); });

  function frame() {
    if (S.dirty) {
      S.dirty = false;
      const t = performance.now();
      draw();
      S.draws++;
      S.drawMs += performance.now() - t;  // the time drawing took, in all
    }
    requestAnimationFrame(frame);
  }

  // For the tests and the curious: the state, and where a cell is on the screen.
  window.lifenet = {
    state: S, screenOf, codeAt, oriented,
    cellsOf(code) {
      const out = [];
      if (!S.cells) return out;
      const [ry, rx, , rw] = S.region;
      for (let i = 0; i < S.cells.length; i++) {
        if (S.cells[i] === code) out.push([mod(ry + Math.floor(i / rw), S.H), mod(rx + i % rw, S.W)]);
      }
      return out;
    },
    colourOfCode,
    pixelAt(y, x) {
      // the colour drawn at the centre of cell (y, x), as #rrggbb
      const p = screenOf(y, x), r = canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      const d = ctx.getImageData(Math.floor((p.x - r.left) * dpr), Math.floor((p.y - r.top) * dpr), 1, 1).data;
      return "#" + [d[0], d[1], d[2]].map((v) => v.toString(16).padStart(2, "0")).join("");
    },
    drop() { if (S.ws) S.ws.close(); },
  };

  fillPolicies();
  $("name").value = sessionStorage.getItem("lifenet.name") || "";
  loadPatterns();
  connect();
  requestAnimationFrame(frame);
})();
