// The editor page: room list, plan, tools, undo/redo, completion, download.
// Every verdict comes from the server (the engine's rulebook); this module
// only keeps the tiles, the history and the view. Names from the file are
// only ever set as textContent, never as markup.

import { History, applyStep } from "./history.js";
import {
  DEVICES,
  cellAt,
  colour,
  drawPlan,
  drawViolations,
  illuminanceNote,
  legendMarkup,
  setScale,
} from "./plan.js";

const CODE = { empty: 0, invalid: 1, light: 2, air_supply: 3, air_return: 4, smoke_detector: 5, void: 6 };
/** Whether a tile holds a device (void, code 6, comes after the devices). */
const isDevice = (code) => code >= CODE.light && code <= CODE.smoke_detector;
/** Tiles no device may take: unusable ceiling, and outside the room. */
const isBlocked = (code) => code === CODE.invalid || code === CODE.void;
const CYCLE = [CODE.empty, CODE.light, CODE.air_supply, CODE.air_return, CODE.smoke_detector];
const $ = (id) => document.getElementById(id);

const state = {
  building: null,
  rooms: [],
  current: 0,
  history: null,
  scale: 40, // pixels per metre
  busy: false,
  stroke: null,
  pan: null,
};

// ---- server calls ---------------------------------------------------------

let pending = 0;
function track(delta) {
  pending += delta;
  document.body.dataset.pending = String(pending);
}

async function post(path, body) {
  track(1);
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        message = (await response.json()).error || message;
      } catch {
        /* not JSON: keep the status line */
      }
      throw new Error(message);
    }
    return response;
  } finally {
    track(-1);
  }
}

function showError(message) {
  const box = $("error");
  box.textContent = message ? `error: ${message}` : "";
  box.hidden = !message;
}

function setStatus(text) {
  $("status").textContent = text;
}

// ---- rooms ----------------------------------------------------------------

function roomFromView(view) {
  const doc = view.document;
  return {
    document: doc,
    id: doc.grid_id,
    width: doc.width,
    height: doc.height,
    tile: doc.tile_size_m,
    codes: Uint8Array.from(view.codes, (c) => c.charCodeAt(0) - 48),
    compliance: view.compliance,
    metrics: view.metrics,
    models: view.models ?? null,
    illuminance: null, // fetched while the map is shown
    seq: 0,
  };
}

/** The room in the interchange format, as the engine's parser reads it. */
function roomDocument(room, withModels = false) {
  const names = state.building.components;
  const cells = new Array(room.codes.length);
  for (let i = 0; i < room.codes.length; i++) {
    cells[i] = { x: i % room.width, y: Math.floor(i / room.width), component: names[room.codes[i]] };
  }
  const doc = { ...room.document, cells };
  if (withModels && room.models) doc.models = room.models;
  return doc;
}

async function validate(index) {
  const room = state.rooms[index];
  const seq = ++room.seq;
  room.compliance = null; // "checking" until the answer for this very version arrives
  refreshVerdicts(index);
  try {
    const withMap = showOptions().illuminance && index === state.current;
    const response = await post("/api/validate", { room: roomDocument(room), illuminance: withMap });
    const verdict = await response.json();
    if (seq !== room.seq) return; // a later edit's answer is on its way
    room.compliance = verdict.compliance;
    room.metrics = verdict.metrics;
    room.illuminance = verdict.illuminance ?? null;
    if (withMap && index === state.current) drawCurrent();
    showError("");
  } catch (error) {
    if (seq === room.seq) showError(error.message);
  }
  refreshVerdicts(index);
}

// ---- drawing --------------------------------------------------------------

function showOptions() {
  return {
    violations: $("show-violations").checked,
    coverage: $("show-coverage").checked,
    reach: $("show-reach").checked,
    illuminance: $("show-illuminance").checked,
  };
}

function drawCurrent() {
  const room = state.rooms[state.current];
  if (!room) return;
  const show = showOptions();
  drawPlan($("plan"), room, state.building.style, show, state.building.profile, state.scale);
  $("plan-note").textContent = illuminanceNote(room, show);
}

function badgeText(room) {
  if (!room.compliance) return ["pending", "checking…"];
  const count = room.compliance.violations.length;
  if (room.compliance.compliant) return ["true", "compliant"];
  return ["false", `${count} violation${count === 1 ? "" : "s"}`];
}

function renderRoomList() {
  const list = $("room-list");
  list.replaceChildren(
    ...state.rooms.map((room, index) => {
      const item = document.createElement("li");
      item.dataset.index = String(index);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = room.id;
      const badge = document.createElement("span");
      badge.className = "badge";
      item.append(name, badge);
      item.addEventListener("click", () => selectRoom(index));
      return item;
    }),
  );
  state.rooms.forEach((_, index) => refreshBadge(index));
}

function refreshBadge(index) {
  const item = $("room-list").children[index];
  if (!item) return;
  const [compliant, text] = badgeText(state.rooms[index]);
  item.dataset.compliant = compliant;
  item.querySelector(".badge").textContent = text;
  item.setAttribute("aria-current", index === state.current ? "true" : "false");
}

function definitionList(element, entries) {
  element.replaceChildren(
    ...entries.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

function refreshPanel() {
  const room = state.rooms[state.current];
  if (!room) return;
  $("room-title").textContent = room.id;
  $("room-facts").textContent =
    `${room.width} x ${room.height} tiles of ${room.tile} m, ${room.document.room_type}, ` +
    `ceiling ${room.document.ceiling_height_m} m, profile ${state.building.profile.name}`;
  const [compliant, text] = badgeText(room);
  const badge = $("room-badge");
  badge.dataset.compliant = compliant;
  badge.textContent = text;
  const list = $("violations");
  const style = state.building.style;
  list.replaceChildren(
    ...(room.compliance ? room.compliance.violations : []).map((violation) => {
      const item = document.createElement("li");
      item.dataset.rule = violation.rule;
      item.style.borderLeftColor = colour(style.rule_colours[violation.rule] || style.other_rule_colour);
      const rule = document.createElement("span");
      rule.className = "rule";
      rule.textContent = violation.rule;
      item.append(rule, document.createTextNode(`: ${violation.message}`));
      return item;
    }),
  );
  const m = room.metrics || {};
  definitionList($("metrics"), [
    ["lights", m.lights],
    ["air supplies", m.air_supply],
    ["air returns", m.air_return],
    ["smoke detectors", m.smoke_detector],
    ["average illuminance", m.illuminance_avg_lx === undefined ? "" : `${m.illuminance_avg_lx} lx`],
    ["uniformity U0", m.uniformity_u0 === undefined ? "" : `${m.uniformity_u0} (target ${m.uniformity_target})`],
    ["area", m.area_m2 === undefined ? "" : `${m.area_m2} m²`],
  ]);
  const models = room.models || {};
  definitionList(
    $("models"),
    DEVICES.filter((name) => models[name]).map((name) => [name.replace("_", " "), models[name].chosen]),
  );
  renderCandidates(models);
  const notes = room.compliance
    ? [room.compliance.input_conflicts, room.compliance.rescue].filter((note) => typeof note === "string")
    : [];
  $("notes").textContent = notes.join(" ");
}

/** Every candidate of each stage of the last completion: model, verdict, devices. */
function renderCandidates(models) {
  const table = $("candidates");
  const rows = [];
  for (const name of DEVICES) {
    for (const candidate of models[name]?.candidates || []) {
      const row = document.createElement("tr");
      if (candidate.model === models[name].chosen) row.className = "chosen";
      const cells = [
        name.replace("_", " "),
        candidate.model,
        candidate.skipped ? "skipped" : candidate.compliant ? "compliant" : "not compliant",
        candidate.devices ?? "",
      ];
      for (const value of cells) {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        row.append(cell);
      }
      rows.push(row);
    }
  }
  table.replaceChildren(...rows);
  table.hidden = !rows.length;
}

function refreshVerdicts(index) {
  refreshBadge(index);
  if (index !== state.current) return;
  refreshPanel();
  drawViolations($("plan"), state.rooms[index], state.building.style, showOptions().violations);
}

function refreshButtons() {
  const history = state.history;
  $("undo").disabled = state.busy || !history.done.length;
  $("redo").disabled = state.busy || !history.undone.length;
  $("complete-room").disabled = state.busy;
  $("complete-building").disabled = state.busy;
  setStatus(history.saveError || `${history.done.length} edits kept in this browser`);
}

function selectRoom(index) {
  state.current = index;
  if (showOptions().illuminance && !state.rooms[index].illuminance) validate(index);
  state.rooms.forEach((_, i) => refreshBadge(i));
  fitScale();
  drawCurrent();
  refreshPanel();
}

function fitScale() {
  const room = state.rooms[state.current];
  const box = $("plan-box");
  const widthM = room.width * room.tile + 0.6;
  const heightM = room.height * room.tile + room.tile * 1.3 + 0.6;
  const fit = Math.min((box.clientWidth - 20) / widthM, (box.clientHeight - 20) / heightM);
  state.scale = Math.max(2, Math.min(120, fit || 40));
}

function zoom(factor) {
  const room = state.rooms[state.current];
  state.scale = Math.max(2, Math.min(400, state.scale * factor));
  setScale($("plan"), room, state.scale);
}

// ---- edits ----------------------------------------------------------------

/** Record and apply a step, redraw, and have the server judge each touched room. */
function commit(step) {
  step.edits = step.edits.filter((edit) => edit.changes.length || edit.modelsBefore !== edit.modelsAfter);
  if (!step.edits.length) return; // a click that changed nothing is not a step
  state.history.push(step);
  afterStep(applyStep(state.rooms, step, true));
}

function afterStep(touched) {
  drawCurrent();
  refreshPanel();
  refreshButtons();
  for (const index of new Set(touched)) validate(index);
}

function undo() {
  if (state.busy) return;
  const step = state.history.undo();
  if (step) afterStep(applyStep(state.rooms, step, false));
}

function redo() {
  if (state.busy) return;
  const step = state.history.redo();
  if (step) afterStep(applyStep(state.rooms, step, true));
}

function tool() {
  return document.querySelector('input[name="tool"]:checked').value;
}

/** What the tool makes of a tile holding ``code``; null leaves it alone. */
function toolResult(name, code) {
  if (name === "cycle") {
    if (isBlocked(code)) return null;
    return CYCLE[(CYCLE.indexOf(code) + 1) % CYCLE.length];
  }
  if (name === "empty") return CODE.empty;
  if (name === "invalid" || name === "void") return code === CODE[name] ? CODE.empty : CODE[name];
  const target = CODE[name];
  if (isBlocked(code)) return null; // a device needs a usable tile
  return code === target ? CODE.empty : target;
}

function handEdit(changes) {
  const room = state.rooms[state.current];
  return { edits: [{ room: state.current, changes, modelsBefore: room.models, modelsAfter: null }] };
}

function onPointerDown(event) {
  if (event.button === 1 || (event.button === 0 && event.altKey)) {
    // Middle button or Alt+drag pans the plan box, whatever the tool.
    const box = $("plan-box");
    state.pan = { x: event.clientX, y: event.clientY, left: box.scrollLeft, top: box.scrollTop };
    event.preventDefault();
    return;
  }
  if (state.busy || event.button !== 0) return;
  const room = state.rooms[state.current];
  const cell = cellAt($("plan"), room, event);
  if (!cell) return;
  const index = cell.y * room.width + cell.x;
  const name = tool();
  if (name === "move") {
    if (isDevice(room.codes[index])) state.stroke = { move: index };
    return;
  }
  const after = toolResult(name, room.codes[index]);
  if (name === "cycle") {
    if (after !== null && after !== room.codes[index]) commit(handEdit([[index, room.codes[index], after]]));
    return;
  }
  // Other tools paint: a drag is one step, every tile gets the first tile's result.
  // A device tool that starts by deleting its device deletes only that device type.
  const only = DEVICES.includes(name) && after === CODE.empty ? CODE[name] : null;
  state.stroke = { value: after, only, seen: new Set(), changes: [], last: cell };
  paint(index);
}

let drawScheduled = false;
/** Redraw once per animation frame, however many tiles a drag paints in between. */
function scheduleDraw() {
  if (drawScheduled) return;
  drawScheduled = true;
  requestAnimationFrame(() => {
    drawScheduled = false;
    drawCurrent();
  });
}

function paint(index) {
  const room = state.rooms[state.current];
  const stroke = state.stroke;
  if (!stroke || stroke.value === undefined || stroke.value === null || stroke.seen.has(index)) return;
  stroke.seen.add(index);
  const before = room.codes[index];
  if (before === stroke.value) return;
  if (isDevice(stroke.value) && isBlocked(before)) return;
  if (stroke.only !== null && before !== stroke.only) return;
  stroke.changes.push([index, before, stroke.value]);
  room.codes[index] = stroke.value; // shown at once, recorded as one step on release
  scheduleDraw();
}

function onPointerMove(event) {
  if (state.pan) {
    const box = $("plan-box");
    box.scrollLeft = state.pan.left - (event.clientX - state.pan.x);
    box.scrollTop = state.pan.top - (event.clientY - state.pan.y);
    return;
  }
  const stroke = state.stroke;
  if (!stroke || stroke.move !== undefined) return;
  const room = state.rooms[state.current];
  const cell = cellAt($("plan"), room, event);
  if (!cell) return;
  // Pointer events skip tiles on a fast drag: paint every tile on the line between.
  const last = stroke.last || cell;
  const steps = Math.max(Math.abs(cell.x - last.x), Math.abs(cell.y - last.y));
  for (let i = 1; i <= steps; i++) {
    const x = Math.round(last.x + ((cell.x - last.x) * i) / steps);
    const y = Math.round(last.y + ((cell.y - last.y) * i) / steps);
    paint(y * room.width + x);
  }
  paint(cell.y * room.width + cell.x);
  stroke.last = cell;
}

function onPointerUp(event) {
  state.pan = null;
  const stroke = state.stroke;
  state.stroke = null;
  if (!stroke) return;
  const room = state.rooms[state.current];
  if (stroke.move !== undefined) {
    const cell = cellAt($("plan"), room, event);
    if (!cell) return;
    const to = cell.y * room.width + cell.x;
    const from = stroke.move;
    if (to === from || room.codes[to] !== CODE.empty) return;
    commit(handEdit([
      [from, room.codes[from], CODE.empty],
      [to, CODE.empty, room.codes[from]],
    ]));
    return;
  }
  // Undo the live preview, then record the stroke as one step.
  for (const [index, before] of stroke.changes) room.codes[index] = before;
  commit(handEdit(stroke.changes));
}

// ---- completion, download, revert ----------------------------------------

async function completeRooms(indices, label) {
  if (state.busy) return;
  state.busy = true;
  refreshButtons();
  setStatus(`${label}…`);
  const edits = [];
  try {
    for (const index of indices) {
      const room = state.rooms[index];
      const response = await post("/api/complete", { room: roomDocument(room) });
      const view = (await response.json()).room;
      const done = roomFromView(view);
      const changes = [];
      for (let i = 0; i < room.codes.length; i++) {
        if (done.codes[i] !== room.codes[i]) changes.push([i, room.codes[i], done.codes[i]]);
      }
      edits.push({ room: index, changes, modelsBefore: room.models, modelsAfter: view.models });
    }
    showError("");
  } catch (error) {
    showError(error.message);
  } finally {
    state.busy = false;
  }
  commit({ label, edits });
  refreshButtons();
}

/** Hand a server answer to the browser as a file download. */
async function save(response, fallbackName) {
  const disposition = response.headers.get("content-disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || fallbackName;
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  setStatus(`downloaded ${name}`);
}

async function download() {
  try {
    const building = {
      building_id: state.building.building_id,
      rooms: state.rooms.map((room) => roomDocument(room, true)),
    };
    await save(await post("/api/download", { building }), state.building.download_name);
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

async function exportRoom(kind) {
  const room = state.rooms[state.current];
  if (!room) return;
  try {
    await save(await post(`/api/export/${kind}`, { room: roomDocument(room) }), `room.${kind}`);
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

async function submitBuilding() {
  try {
    const building = {
      building_id: state.building.building_id,
      rooms: state.rooms.map((room) => roomDocument(room, true)),
    };
    const answer = await (await post("/api/submit", { building })).json();
    showError("");
    setStatus(`submitted building ${answer.submitted}: the platform lays it out in its next batch`);
  } catch (error) {
    showError(error.message);
  }
}

function revert() {
  if (!window.confirm("Forget every edit kept in this browser and reopen the file?")) return;
  state.history.clear();
  window.location.reload();
}

// ---- start ----------------------------------------------------------------

function bind() {
  const plan = $("plan");
  plan.addEventListener("pointerdown", onPointerDown);
  window.addEventListener("pointermove", onPointerMove);
  window.addEventListener("pointerup", onPointerUp);
  plan.addEventListener(
    "wheel",
    (event) => {
      if (!event.ctrlKey) return; // plain wheel scrolls (pans) the plan box
      event.preventDefault();
      zoom(event.deltaY < 0 ? 1.15 : 1 / 1.15);
    },
    { passive: false },
  );
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("complete-room").addEventListener("click", () => completeRooms([state.current], "complete room"));
  $("complete-building").addEventListener("click", () =>
    completeRooms(state.rooms.map((_, i) => i), "complete building"),
  );
  $("download").addEventListener("click", download);
  $("export-png").addEventListener("click", () => exportRoom("png"));
  $("export-dxf").addEventListener("click", () => exportRoom("dxf"));
  $("revert").addEventListener("click", revert);
  $("submit").addEventListener("click", submitBuilding);
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(0.8));
  $("zoom-fit").addEventListener("click", () => {
    fitScale();
    setScale($("plan"), state.rooms[state.current], state.scale);
  });
  for (const id of ["show-violations", "show-coverage", "show-reach"]) $(id).addEventListener("change", drawCurrent);
  $("show-illuminance").addEventListener("change", () => {
    drawCurrent();
    const room = state.rooms[state.current];
    if ($("show-illuminance").checked && room && !room.illuminance) validate(state.current);
  });
  window.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey)) return;
    const key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) undo();
    else if ((key === "z" && event.shiftKey) || key === "y") redo();
    else return;
    event.preventDefault();
  });
}

async function start() {
  bind();
  let building;
  try {
    const response = await fetch("/api/building");
    building = await response.json();
  } catch (error) {
    showError(`cannot load the building: ${error.message}`);
    return;
  }
  state.building = building;
  $("submit").hidden = !building.can_submit;
  state.rooms = building.rooms.map(roomFromView);
  $("building-name").textContent = `${building.building_id} (${building.file_name})`;
  document.title = `${building.building_id} — ceilgrid editor`;
  $("legend").innerHTML = legendMarkup(building.style);
  const rejected = $("rejected");
  rejected.replaceChildren(
    ...building.rejected.map((error) => {
      const item = document.createElement("li");
      item.textContent = `error: ${error.message}`;
      return item;
    }),
  );
  $("rejected-section").hidden = !building.rejected.length;
  state.history = new History(building.fingerprint).load();
  const touched = [];
  for (const step of state.history.done) touched.push(...applyStep(state.rooms, step, true));
  renderRoomList();
  if (state.rooms.length) selectRoom(0);
  refreshButtons();
  for (const index of new Set(touched)) validate(index);
  if (!state.rooms.length) showError("no room of this file could be read; see the rejected rooms");
  document.body.dataset.ready = "true";
}

start();
