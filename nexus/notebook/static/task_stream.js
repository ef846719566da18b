// The task stream (an anywidget module): a row per worker grouped by host, a span per task or call on a canvas.
//
// Python (nexus/notebook/stream.py) sends a binary batch at most ~10 times a second: the spans finished since
// the last one (float64, COLUMNS per span), new function names, the rows and what runs now. A view asks for
// everything kept when it opens ("hello"). Pause freezes the picture; batches are still kept and shown on resume.
// Wheel: zoom (around the pointer once not following); drag: pan; "live" follows the present again; click: select
// a span (its caller -> callee arrows and its details). Colours follow JupyterLab's theme (its CSS variables).

const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"];
const FAILED_EDGE = "#d62728";
const COLS = 9; // start, end, key, name, row, parent, flags, args bytes, result bytes
const KEEP = 20000;
const ROW = 20;
const HOST_ROW = 18;
const LABELS = 170;
const WINDOWS = [1, 5, 10, 30, 60, 300];

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function cssVar(node, name, fallback) {
  const value = getComputedStyle(node).getPropertyValue(name).trim();
  return value || fallback;
}

function niceTicks(t0, t1, count) {
  const raw = Math.max(t1 - t0, 1e-9) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) ticks.push(t);
  return { step, ticks };
}

function tickLabel(value, step) {
  if (Math.abs(value) < step / 1000) return "now";
  if (step >= 1000) return `${(value / 1000).toFixed(0)} s`;
  if (step >= 100) return `${(value / 1000).toFixed(1)} s`;
  return `${value.toFixed(0)} ms`;
}

function duration(ms) {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

function bytes(n) {
  if (n < 0) return "?";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

function naturally(a, b) {
  return a.localeCompare(b, undefined, { numeric: true });
}

function render({ model, el: root }) {
  root.classList.add("nexus-stream-view");
  const bar = el("div", "nx-bar");
  const pause = el("button", "nx-button nx-pause", "pause");
  const live = el("button", "nx-button nx-live", "live");
  const windowPick = el("select", "nx-window");
  for (const s of WINDOWS) {
    const option = el("option", "", `last ${s} s`);
    option.value = String(s);
    windowPick.appendChild(option);
  }
  const status = el("span", "nx-status");
  bar.append(pause, live, windowPick, status);
  const legend = el("div", "nx-legend");
  const body = el("div", "nx-body");
  const labels = el("div", "nx-labels");
  const plot = el("div", "nx-plot");
  const canvas = el("canvas", "nx-canvas");
  const axis = el("div", "nx-axis");
  const tip = el("div", "nx-tip");
  plot.append(axis, canvas, tip);
  body.append(labels, plot);
  const detail = el("div", "nx-detail");
  root.append(bar, legend, body, detail);

  // The spans kept: COLS float64 each; `dropped` counts those let go (absolute index = dropped + local index).
  let data = new Float64Array(COLS * 1024);
  let count = 0;
  let dropped = 0;
  let byKey = new Map(); // key -> local index
  let children = new Map(); // parent key -> [keys]
  let names = [];
  let rows = []; // [worker, host, kind]
  let running = []; // [key, name, row, start]
  let serverNow = 0;
  let receivedAt = performance.now();
  let missed = 0;
  let skipped = 0; // spans the kernel did not send: more finished per tick than the view draws
  // What the picture shows: following the present, or a fixed range; frozen while paused.
  let follow = true;
  let windowMs = (model.get("window") || 10) * 1000;
  let fixedEnd = 0;
  let frozen = null; // {now, count (absolute), running}
  let selected = -1; // a key
  let drawnRects = []; // [x, y, w, h, local index or -1 - running index]
  let frames = 0;
  let scheduled = false;
  let animating = false;
  let timer = null;

  function now() {
    return frozen ? frozen.now : serverNow + (performance.now() - receivedAt);
  }

  function append(buffer) {
    if (!buffer) return;
    const view = buffer instanceof DataView ? buffer : new DataView(buffer.buffer || buffer, buffer.byteOffset || 0, buffer.byteLength);
    const n = Math.floor(view.byteLength / (8 * COLS));
    if (count + n > data.length / COLS) {
      const bigger = new Float64Array(Math.max(data.length * 2, (count + n) * COLS));
      bigger.set(data.subarray(0, count * COLS));
      data = bigger;
    }
    for (let i = 0; i < n; i++) {
      const at = (count + i) * COLS;
      for (let c = 0; c < COLS; c++) data[at + c] = view.getFloat64((i * COLS + c) * 8, true);
      const key = data[at + 2];
      const parent = data[at + 5];
      byKey.set(key, count + i);
      if (parent >= 0) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(key);
      }
    }
    count += n;
    if (count > KEEP * 1.5) compact();
  }

  function compact() {
    const cut = count - KEEP;
    if (frozen && dropped + cut > frozen.count) return; // (never drop what a paused picture shows)
    data.copyWithin(0, cut * COLS, count * COLS);
    count -= cut;
    dropped += cut;
    byKey = new Map();
    children = new Map();
    for (let i = 0; i < count; i++) {
      byKey.set(data[i * COLS + 2], i);
      const parent = data[i * COLS + 5];
      if (parent >= 0) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(data[i * COLS + 2]);
      }
    }
  }

  model.on("msg:custom", (msg, buffers) => {
    if (!msg || (msg.kind !== "batch" && msg.kind !== "snapshot")) return;
    if (msg.kind === "snapshot") {
      count = 0;
      byKey = new Map();
      children = new Map();
      names = [];
      frozen = frozen && { ...frozen, count: 0 };
    } else if (msg.names_from > names.length) {
      model.send({ kind: "hello" }); // (a batch this view missed the start of: ask for everything again)
      return;
    }
    names = names.slice(0, msg.names_from).concat(msg.names);
    rows = msg.rows;
    running = msg.running;
    serverNow = msg.now;
    receivedAt = performance.now();
    missed = msg.missed;
    skipped = msg.skipped || 0;
    append(buffers && buffers[0]);
    root.dataset.spans = String(dropped + count);
    root.dataset.received = String((Number(root.dataset.received) || 0) + 1);
    if (!frozen) schedule();
  });

  // -- layout ------------------------------------------------------------------------------------

  function layout() {
    // Rows by host then worker (natural order); a host's heading only when there are several hosts.
    const order = rows.map((r, i) => i).sort((a, b) => naturally(rows[a][1], rows[b][1]) || naturally(rows[a][0], rows[b][0]));
    const hosts = new Set(rows.map((r) => r[1]));
    const lines = [];
    let y = 0;
    let host = null;
    for (const i of order) {
      if (hosts.size > 1 && rows[i][1] !== host) {
        host = rows[i][1];
        lines.push({ kind: "host", text: host || "(unknown host)", y, h: HOST_ROW });
        y += HOST_ROW;
      }
      lines.push({ kind: "worker", row: i, text: rows[i][0], sub: rows[i][2], y, h: ROW });
      y += ROW;
    }
    return { lines, height: Math.max(y, ROW) };
  }

  function drawLabels(lines) {
    const text = lines.map((l) => `${l.kind}:${l.text}:${l.sub || ""}:${l.y}`).join("|");
    if (labels.dataset.drawn === text) return;
    labels.dataset.drawn = text;
    labels.replaceChildren(
      ...lines.map((l) => {
        const node = el("div", l.kind === "host" ? "nx-host" : "nx-row");
        node.style.top = `${l.y}px`;
        node.style.height = `${l.h}px`;
        node.textContent = l.text;
        if (l.sub && l.kind === "worker") {
          const sub = el("span", "nx-sub", ` ${l.sub === "task" ? "" : l.sub}`);
          node.appendChild(sub);
          node.title = `${l.text}: ${l.sub === "task" ? "runs tasks" : l.sub === "spare" ? "spare, for the next actor" : l.sub}`;
        }
        return node;
      }),
    );
  }

  function drawLegend(used) {
    const text = [...used].join(",");
    if (legend.dataset.drawn === text) return;
    legend.dataset.drawn = text;
    const items = [...used].sort((a, b) => a - b).map((i) => {
      const item = el("span", "nx-key");
      const swatch = el("span", "nx-swatch");
      swatch.style.background = PALETTE[i % PALETTE.length];
      item.append(swatch, el("span", "nx-name", names[i] || "?"));
      return item;
    });
    const failed = el("span", "nx-key");
    const mark = el("span", "nx-swatch nx-failed-swatch");
    failed.append(mark, el("span", "nx-name", "failed"));
    const run = el("span", "nx-key");
    run.append(el("span", "nx-swatch nx-running-swatch"), el("span", "nx-name", "running"));
    legend.replaceChildren(...items, failed, run);
  }

  // -- drawing -----------------------------------------------------------------------------------

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(draw);
  }

  function draw() {
    scheduled = false;
    frames++;
    const { lines, height } = layout();
    drawLabels(lines);
    const rowY = new Map(lines.filter((l) => l.kind === "worker").map((l) => [l.row, l.y]));
    const width = Math.max(plot.clientWidth, 100);
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      labels.style.height = `${height}px`;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const ink = cssVar(root, "--jp-ui-font-color1", getComputedStyle(root).color || "#222");
    const grid = cssVar(root, "--jp-border-color2", "rgba(128,128,128,0.3)");
    const t = now();
    const t1 = follow ? t : fixedEnd;
    const t0 = t1 - windowMs;
    const scale = width / (t1 - t0);
    const x = (v) => (v - t0) * scale;

    // The time axis: ticks relative to now, as DOM labels over the canvas.
    const { step, ticks } = niceTicks(t0 - t, t1 - t, Math.max(2, Math.floor(width / 110)));
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    const tickNodes = [];
    for (const v of ticks) {
      const at = Math.round(x(v + t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(at, 0);
      ctx.lineTo(at, height);
      ctx.stroke();
      const label = el("span", "nx-tick", tickLabel(v, step));
      label.style.left = `${at}px`;
      if (at > width - 24) label.style.transform = "translateX(-100%)"; // (the last, "now", inside the plot)
      else if (at < 24) label.style.transform = "none";
      tickNodes.push(label);
    }
    axis.replaceChildren(...tickNodes);
    for (const l of lines) {
      if (l.kind === "host") {
        ctx.fillStyle = grid;
        ctx.fillRect(0, l.y + l.h - 1, width, 1);
      }
    }

    // Spans: finished ones (as many as the picture holds: all of it once frozen), then what runs now.
    const shown = frozen ? Math.min(frozen.count - dropped, count) : count;
    const depthOf = new Map();
    const depth = (i) => {
      // A span inside its caller's on the same row (a task run on top of one waiting in get) is drawn inset.
      if (depthOf.has(i)) return depthOf.get(i);
      let d = 0;
      const parent = byKey.get(data[i * COLS + 5]);
      if (parent !== undefined && parent < shown && data[parent * COLS + 4] === data[i * COLS + 4]) d = Math.min(depth(parent) + 1, 3);
      depthOf.set(i, d);
      return d;
    };
    const used = new Set();
    const colours = new Set();
    drawnRects = [];
    let drawn = 0;
    for (let i = 0; i < shown; i++) {
      const at = i * COLS;
      const start = data[at];
      const end = data[at + 1];
      if (end < t0 || start > t1) continue;
      const y = rowY.get(data[at + 4]);
      if (y === undefined) continue;
      const name = data[at + 3];
      const d = depth(i);
      const x0 = x(start);
      const w = Math.max(x(end) - x0, 1);
      const top = y + 2 + d * 4;
      const h = ROW - 4 - d * 4;
      const colour = PALETTE[name % PALETTE.length];
      ctx.fillStyle = colour;
      ctx.fillRect(x0, top, w, h);
      if (data[at + 6] & 1) {
        ctx.strokeStyle = FAILED_EDGE;
        ctx.lineWidth = 2;
        ctx.strokeRect(x0 + 1, top + 1, Math.max(w - 2, 1), h - 2);
      }
      used.add(name);
      colours.add(colour);
      drawnRects.push([x0, top, w, h, i]);
      drawn++;
    }
    const current = frozen ? frozen.running : running;
    let runningDrawn = 0;
    let runningWidth = 0;
    current.forEach((r, j) => {
      const y = rowY.get(r[2]);
      if (y === undefined || r[3] > t1) return;
      const x0 = x(Math.max(r[3], t0));
      const w = Math.max(x(Math.min(t, t1)) - x0, 2);
      const colour = PALETTE[r[1] % PALETTE.length];
      ctx.globalAlpha = 0.55;
      ctx.fillStyle = colour;
      ctx.fillRect(x0, y + 2, w, ROW - 4);
      ctx.globalAlpha = 1;
      ctx.fillStyle = colour;
      ctx.fillRect(x0 + w - 2, y + 2, 2, ROW - 4); // its growing edge
      used.add(r[1]);
      colours.add(colour);
      drawnRects.push([x0, y + 2, w, ROW - 4, -1 - j]);
      runningDrawn++;
      runningWidth += w;
    });
    drawSelected(ctx, x, rowY, ink, current, shown);
    drawLegend(used);
    const range = follow ? `last ${(windowMs / 1000).toPrecision(3).replace(/\.?0+$/, "")} s` : "zoomed";
    status.textContent =
      `${range} · ${drawn} spans · ${runningDrawn} running` + (frozen ? " · paused" : "") + (missed ? ` · ${missed} events missed` : "") +
      (skipped ? ` · ${skipped.toLocaleString()} spans not drawn (over 10,000 a second)` : "");
    root.dataset.drawn = String(drawn);
    root.dataset.running = String(runningDrawn);
    root.dataset.runningWidth = runningWidth.toFixed(1);
    root.dataset.colours = [...colours].join(" ");
    root.dataset.frames = String(frames);
    root.dataset.paused = frozen ? "true" : "false";
    root.dataset.start = String(t0);
    root.dataset.end = String(t1);
    animating = !frozen && follow && (current.length > 0 || count > 0);
    if (animating && timer === null) {
      // (time passes: spans slide left, running ones grow; one timer at a time however often batches come)
      timer = setTimeout(() => {
        timer = null;
        schedule();
      }, current.length > 0 ? 50 : 250);
    }
  }

  function spanBox(key, live, shown, x, rowY) {
    const i = byKey.get(key);
    if (i !== undefined && i < shown) {
      const y = rowY.get(data[i * COLS + 4]);
      return y === undefined ? null : { x0: x(data[i * COLS]), x1: x(data[i * COLS + 1]), y: y + ROW / 2 };
    }
    const r = live.find((r) => r[0] === key);
    if (!r) return null;
    const y = rowY.get(r[2]);
    return y === undefined ? null : { x0: x(r[3]), x1: x(now()), y: y + ROW / 2 };
  }

  function arrow(ctx, from, to, ink) {
    const x0 = from.x0 + 2;
    const x1 = to.x0;
    ctx.beginPath();
    ctx.moveTo(x0, from.y);
    ctx.bezierCurveTo(x0, (from.y + to.y) / 2, x1, (from.y + to.y) / 2, x1, to.y);
    ctx.stroke();
    const dir = to.y >= from.y ? 1 : -1;
    ctx.beginPath();
    ctx.moveTo(x1, to.y);
    ctx.lineTo(x1 - 4, to.y - 6 * dir);
    ctx.lineTo(x1 + 4, to.y - 6 * dir);
    ctx.closePath();
    ctx.fill();
  }

  function drawSelected(ctx, x, rowY, ink, live, shown) {
    if (selected < 0) return;
    const self = spanBox(selected, live, shown, x, rowY);
    if (!self) return;
    ctx.strokeStyle = ink;
    ctx.fillStyle = ink;
    ctx.lineWidth = 2;
    ctx.strokeRect(self.x0, self.y - ROW / 2 + 1, Math.max(self.x1 - self.x0, 2), ROW - 2);
    ctx.lineWidth = 1.5;
    const i = byKey.get(selected);
    const parent = i !== undefined ? data[i * COLS + 5] : -1;
    const caller = parent >= 0 ? spanBox(parent, live, shown, x, rowY) : null;
    if (caller) arrow(ctx, caller, self, ink);
    for (const child of children.get(selected) || []) {
      const callee = spanBox(child, live, shown, x, rowY);
      if (callee) arrow(ctx, self, callee, ink);
    }
  }

  // -- interaction ---------------------------------------------------------------------------------

  function hit(event) {
    const box = canvas.getBoundingClientRect();
    const px = event.clientX - box.left;
    const py = event.clientY - box.top;
    let best = null;
    for (const r of drawnRects) {
      if (px >= r[0] - 2 && px <= r[0] + r[2] + 2 && py >= r[1] && py <= r[1] + r[3]) best = r; // (the last drawn is on top)
    }
    return best;
  }

  function describe(r) {
    const rowOf = (row) => rows[row] || ["?", "", ""];
    if (r[4] >= 0) {
      const at = r[4] * COLS;
      const [worker, host] = rowOf(data[at + 4]);
      return {
        key: data[at + 2],
        lines: [
          `${names[data[at + 3]] || "?"}${data[at + 6] & 1 ? " — failed" : ""}`,
          `${duration(data[at + 1] - data[at])} on ${worker}${host ? ` (${host})` : ""}`,
          ...(data[at + 7] >= 0 || data[at + 8] >= 0 ? [`arguments ${bytes(data[at + 7])} · results ${bytes(data[at + 8])}`] : []),
        ],
      };
    }
    const live = (frozen ? frozen.running : running)[-1 - r[4]];
    const [worker, host] = rowOf(live[2]);
    return {
      key: live[0],
      lines: [`${names[live[1]] || "?"} — running`, `for ${duration(now() - live[3])} on ${worker}${host ? ` (${host})` : ""}`],
    };
  }

  let drag = null;
  canvas.addEventListener("mousemove", (event) => {
    if (drag) {
      const dx = event.clientX - drag.x;
      fixedEnd = drag.end - (dx * windowMs) / Math.max(canvas.clientWidth, 1);
      follow = false;
      drag.moved = drag.moved || Math.abs(dx) > 3;
      schedule();
      return;
    }
    const r = hit(event);
    if (!r) {
      tip.style.display = "none";
      return;
    }
    tip.replaceChildren(...describe(r).lines.map((line) => el("div", "", line)));
    const box = plot.getBoundingClientRect();
    tip.style.display = "block";
    tip.style.left = `${Math.min(event.clientX - box.left + 12, box.width - 260)}px`;
    tip.style.top = `${event.clientY - box.top + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => {
    tip.style.display = "none";
    drag = null;
  });
  canvas.addEventListener("mousedown", (event) => {
    drag = { x: event.clientX, end: follow ? now() : fixedEnd, moved: false };
  });
  canvas.addEventListener("mouseup", (event) => {
    const was = drag;
    drag = null;
    if (was && was.moved) return;
    const r = hit(event);
    selected = r ? describe(r).key : -1;
    detail.textContent = r ? describe(r).lines.join(" · ") : "";
    schedule();
  });
  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const factor = Math.exp(event.deltaY * 0.002);
      const box = canvas.getBoundingClientRect();
      const end = follow ? now() : fixedEnd;
      const at = end - windowMs + ((event.clientX - box.left) / Math.max(box.width, 1)) * windowMs;
      const next = Math.min(Math.max(windowMs * factor, 1), 3600e3);
      if (!follow) fixedEnd = at + ((end - at) * next) / windowMs;
      windowMs = next;
      schedule();
    },
    { passive: false },
  );
  canvas.addEventListener("dblclick", () => {
    follow = true;
    schedule();
  });
  live.addEventListener("click", () => {
    follow = true;
    schedule();
  });
  windowPick.addEventListener("change", () => {
    windowMs = Number(windowPick.value) * 1000;
    model.set("window", Number(windowPick.value));
    model.save_changes();
    schedule();
  });
  pause.addEventListener("click", () => {
    model.set("paused", !model.get("paused"));
    model.save_changes();
    applyPause();
  });

  function applyPause() {
    const paused = !!model.get("paused");
    if (paused && !frozen) frozen = { now: now(), count: dropped + count, running: running.slice() };
    if (!paused && frozen) frozen = null;
    pause.textContent = paused ? "resume" : "pause";
    pause.classList.toggle("nx-on", paused);
    schedule();
  }

  function applyWindow() {
    const seconds = Number(model.get("window")) || 10;
    windowMs = seconds * 1000;
    windowPick.value = WINDOWS.includes(seconds) ? String(seconds) : "";
    if (!WINDOWS.includes(seconds)) {
      const option = el("option", "", `last ${seconds} s`);
      option.value = String(seconds);
      windowPick.appendChild(option);
      windowPick.value = String(seconds);
    }
    schedule();
  }

  model.on("change:paused", applyPause);
  model.on("change:window", applyWindow);
  const resize = new ResizeObserver(() => schedule());
  resize.observe(plot);
  // JupyterLab switching themes changes the CSS variables: draw again in the new colours.
  const theme = new MutationObserver(() => schedule());
  theme.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  applyWindow();
  applyPause();
  model.send({ kind: "hello" });
  return () => {
    resize.disconnect();
    theme.disconnect();
    if (timer !== null) clearTimeout(timer);
    frozen = { now: now(), count: dropped + count, running: [] }; // (a view removed draws no more)
  };
}

export default { render };
