// The ceiling plan as SVG at true scale: one user unit is one metre, so the
// scale bar and the coverage circles need no conversion. Row y = 0 is at the
// top, as the JSON grid (and the PNG plans) read. Tiles are drawn in row runs
// and grid lines as one path, so a 100x80 room stays a few thousand elements
// and zooming only changes the element's pixel size.

const SVG = "http://www.w3.org/2000/svg";
const HEX = /^#[0-9a-fA-F]{6}$/;
export const DEVICES = ["light", "air_supply", "air_return", "smoke_detector"];
const CODE = { empty: 0, invalid: 1, light: 2, air_supply: 3, air_return: 4, smoke_detector: 5, void: 6 };
const TINT = 0.3; // device tiles get this share of their colour, as in the PNG plans
const MARGIN_M = 0.3;

/** A colour from the server's style, or grey if it is not a plain #rrggbb. */
export function colour(value) {
  return HEX.test(value) ? value : "#444444";
}

function tint(hex) {
  const c = colour(hex);
  const channel = (i) => {
    const value = parseInt(c.slice(i, i + 2), 16) / 255;
    return Math.round((1 - TINT * (1 - value)) * 255).toString(16).padStart(2, "0");
  };
  return `#${channel(1)}${channel(3)}${channel(5)}`;
}

// The markers of the PNG plans (matplotlib's s, X, D, o), in a unit tile.
const POLYGONS = {
  X: [0.2, 0.32, 0.32, 0.2, 0.5, 0.38, 0.68, 0.2, 0.8, 0.32, 0.62, 0.5, 0.8, 0.68, 0.68, 0.8, 0.5, 0.62, 0.32, 0.8, 0.2, 0.68, 0.38, 0.5],
  D: [0.5, 0.16, 0.84, 0.5, 0.5, 0.84, 0.16, 0.5],
};

/** The marker of a device type on the tile at (x0, y0) metres, ``t`` metres a side. */
function markerShape(marker, x0, y0, t, attributes = "") {
  switch (marker) {
    case "s":
      return `<rect${attributes} x="${x0 + 0.2 * t}" y="${y0 + 0.2 * t}" width="${0.6 * t}" height="${0.6 * t}"/>`;
    case "X":
    case "D": {
      const unit = POLYGONS[marker];
      const points = [];
      for (let i = 0; i < unit.length; i += 2) points.push(`${x0 + unit[i] * t},${y0 + unit[i + 1] * t}`);
      return `<polygon${attributes} points="${points.join(" ")}"/>`;
    }
    default:
      return `<circle${attributes} cx="${x0 + 0.5 * t}" cy="${y0 + 0.5 * t}" r="${0.3 * t}"/>`;
  }
}

/** Symbol definitions and the invalid-tile hatch, built from the server's style. */
export function definitions(style) {
  const symbols = DEVICES.map(
    (name) =>
      `<symbol id="sym-${name}" viewBox="0 0 1 1"><g fill="${colour(style.colours[name])}" ` +
      `stroke="#202020" stroke-width="0.05">${markerShape(style.markers[name], 0, 0, 1)}</g></symbol>`,
  ).join("");
  return (
    `<defs>${symbols}<pattern id="hatch" patternUnits="userSpaceOnUse" width="0.15" height="0.15" ` +
    `patternTransform="rotate(45)"><rect width="0.15" height="0.15" fill="${colour(style.colours.invalid)}"/>` +
    `<line x1="0" y1="0" x2="0" y2="0.15" stroke="${colour(style.hatch_colour)}" stroke-width="0.03"/>` +
    `</pattern></defs>`
  );
}

/** A round length for the scale bar: about a quarter of the room's width. */
function scaleLength(widthM) {
  const target = Math.max(widthM / 4, 0.1);
  const power = 10 ** Math.floor(Math.log10(target));
  for (const step of [5, 2, 1]) if (step * power <= target) return step * power;
  return power;
}

/** The whole plan of ``room`` (codes, width, height, tile) as SVG markup. */
export function planMarkup(room, style, show, profile) {
  const { width, height, tile, codes } = room;
  const w = width * tile;
  const h = height * tile;
  const parts = [definitions(style)];
  parts.push(`<clipPath id="room-clip"><rect x="0" y="0" width="${w}" height="${h}"/></clipPath>`);
  parts.push(`<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>`);
  // Invalid and void tiles in row runs; device tiles tinted, with their symbol.
  const runs = { [CODE.invalid]: [], [CODE.void]: [] };
  const tiles = [];
  const symbols = Object.fromEntries(DEVICES.map((name) => [name, []]));
  for (let y = 0; y < height; y++) {
    let x = 0;
    while (x < width) {
      const code = codes[y * width + x];
      if (code in runs) {
        let end = x;
        while (end < width && codes[y * width + end] === code) end++;
        runs[code].push(`M${x * tile} ${y * tile}h${(end - x) * tile}v${tile}h${-(end - x) * tile}z`);
        x = end;
        continue;
      }
      if (code >= CODE.light && code <= CODE.smoke_detector) {
        const name = DEVICES[code - CODE.light];
        tiles.push(
          `<rect x="${x * tile}" y="${y * tile}" width="${tile}" height="${tile}" fill="${tint(style.colours[name])}"/>`,
        );
        // Plain shapes, not <use>: a thousand symbol instances cost far more to draw.
        symbols[name].push(markerShape(style.markers[name], x * tile, y * tile, tile, ` class="device" data-component="${name}"`));
      }
      x++;
    }
  }
  const invalid = runs[CODE.invalid];
  const outside = runs[CODE.void];
  if (invalid.length) parts.push(`<path class="invalid" d="${invalid.join("")}" fill="url(#hatch)"/>`);
  if (outside.length) parts.push(`<path class="void" d="${outside.join("")}" fill="${colour(style.colours.void)}"/>`);
  parts.push(tiles.join(""));
  if (show.illuminance && room.illuminance) parts.push(illuminanceImage(room));
  // Grid lines as one path.
  let grid = "";
  for (let x = 0; x <= width; x++) grid += `M${x * tile} 0V${h}`;
  for (let y = 0; y <= height; y++) grid += `M0 ${y * tile}H${w}`;
  parts.push(
    `<path d="${grid}" stroke="${colour(style.grid_colour)}" stroke-width="${tile * 0.03}" fill="none"/>`,
  );
  for (const name of DEVICES) {
    parts.push(
      `<g fill="${colour(style.colours[name])}" stroke="#202020" stroke-width="${tile * 0.05}">${symbols[name].join("")}</g>`,
    );
  }
  if (show.coverage) parts.push(circles(room, CODE.smoke_detector, profile.smoke_radius_m, style.colours.smoke_detector));
  if (show.reach) parts.push(circles(room, CODE.air_supply, profile.supply_radius_m, style.colours.air_supply));
  parts.push(`<g id="violation-layer"></g>`);
  parts.push(scaleBar(w, h, tile));
  return parts.join("");
}

// Viridis, as the PNG illuminance view (matplotlib's "viridis"), in five stops.
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

function viridis(t) {
  const position = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(position), VIRIDIS.length - 2);
  const f = position - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
}

function luxRange(room) {
  let max = 1;
  for (const value of room.illuminance.lux) if (value !== null && value > max) max = value;
  return max;
}

/** The illuminance map as one image, a pixel per tile (drawn with hard edges by the CSS). */
function illuminanceImage(room) {
  const { width, height, tile } = room;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const lux = room.illuminance.lux;
  const max = luxRange(room);
  for (let i = 0; i < width * height; i++) {
    const value = lux[i];
    if (value === null || value === undefined) continue; // unusable: transparent
    const [r, g, b] = viridis(value / max);
    image.data.set([r, g, b, 255], i * 4);
  }
  context.putImageData(image, 0, 0);
  return (
    `<image class="illuminance" href="${canvas.toDataURL()}" x="0" y="0" width="${width * tile}" ` +
    `height="${height * tile}" preserveAspectRatio="none" opacity="0.85"/>`
  );
}

/** A line saying what the illuminance colours mean, or "" when the map is not shown. */
export function illuminanceNote(room, show) {
  if (!show.illuminance || !room.illuminance) return "";
  const required = Number(room.illuminance.required_lx);
  return `Illuminance: 0 to ${luxRange(room)} lx from dark blue to yellow; required ${required} lx.`;
}

function circles(room, code, radius, fill) {
  const { width, tile, codes } = room;
  const out = [];
  for (let i = 0; i < codes.length; i++) {
    if (codes[i] !== code) continue;
    const cx = ((i % width) + 0.5) * tile;
    const cy = (Math.floor(i / width) + 0.5) * tile;
    out.push(`<circle cx="${cx}" cy="${cy}" r="${radius}"/>`);
  }
  return (
    `<g class="reach" clip-path="url(#room-clip)" fill="${colour(fill)}" fill-opacity="0.08" stroke="${colour(fill)}" ` +
    `stroke-width="${room.tile * 0.04}" stroke-dasharray="${room.tile * 0.2}">${out.join("")}</g>`
  );
}

function scaleBar(w, h, tile) {
  const length = scaleLength(w);
  const y = h + tile * 0.6;
  const label = `${Number(length.toPrecision(3))} m`;
  const size = Math.max(tile * 0.45, 0.15);
  return (
    `<g class="scale-bar" data-metres="${length}"><rect x="0" y="${y}" width="${length}" height="${tile * 0.15}" fill="#202020"/>` +
    `<text x="${length + tile * 0.3}" y="${y + tile * 0.2}" font-size="${size}" fill="#202020">${label}</text></g>`
  );
}

/** Draw ``room`` into ``svg``; ``scale`` is pixels per metre. */
export function drawPlan(svg, room, style, show, profile, scale) {
  const w = room.width * room.tile;
  const h = room.height * room.tile;
  const bottom = h + room.tile * 1.3;
  svg.setAttribute("viewBox", `${-MARGIN_M} ${-MARGIN_M} ${w + 2 * MARGIN_M} ${bottom + 2 * MARGIN_M}`);
  setScale(svg, room, scale);
  svg.innerHTML = planMarkup(room, style, show, profile);
  drawViolations(svg, room, style, show.violations);
}

export function setScale(svg, room, scale) {
  const w = room.width * room.tile + 2 * MARGIN_M;
  const h = room.height * room.tile + room.tile * 1.3 + 2 * MARGIN_M;
  svg.setAttribute("width", String(Math.round(w * scale)));
  svg.setAttribute("height", String(Math.round(h * scale)));
}

/** Outline the cells each violation names, with "rule: message" on hover. */
export function drawViolations(svg, room, style, visible) {
  const layer = svg.querySelector("#violation-layer");
  if (!layer) return;
  layer.replaceChildren();
  if (!visible || !room.compliance) return;
  const tile = room.tile;
  for (const violation of room.compliance.violations) {
    const stroke = colour(style.rule_colours[violation.rule] || style.other_rule_colour);
    const group = document.createElementNS(SVG, "g");
    group.setAttribute("class", "violation");
    group.setAttribute("data-rule", violation.rule);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${violation.rule}: ${violation.message}`;
    group.append(title);
    for (const [x, y] of violation.cells) {
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(x * tile + tile * 0.04));
      rect.setAttribute("y", String(y * tile + tile * 0.04));
      rect.setAttribute("width", String(tile * 0.92));
      rect.setAttribute("height", String(tile * 0.92));
      rect.setAttribute("fill", stroke);
      rect.setAttribute("fill-opacity", "0.18");
      rect.setAttribute("stroke", stroke);
      rect.setAttribute("stroke-width", String(tile * 0.06));
      rect.setAttribute("data-x", String(x));
      rect.setAttribute("data-y", String(y));
      group.append(rect);
    }
    layer.append(group);
  }
}

/** The tile under a pointer event, or null outside the room. */
export function cellAt(svg, room, event) {
  const matrix = svg.getScreenCTM();
  if (!matrix) return null;
  const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
  const x = Math.floor(point.x / room.tile);
  const y = Math.floor(point.y / room.tile);
  if (x < 0 || y < 0 || x >= room.width || y >= room.height) return null;
  return { x, y };
}

/** A small legend swatch per component, same symbols as the plan. */
export function legendMarkup(style) {
  const names = { empty: "empty", invalid: "unusable", light: "light", air_supply: "air supply", air_return: "air return", smoke_detector: "smoke detector", void: "outside the room" };
  const swatch = (name) => {
    if (name === "empty") return `<rect width="1" height="1" fill="#fff" stroke="${colour(style.grid_colour)}" stroke-width="0.1"/>`;
    if (name === "invalid") return `<rect width="1" height="1" fill="url(#hatch)"/>`;
    if (name === "void") return `<rect width="1" height="1" fill="${colour(style.colours.void)}"/>`;
    return `<rect width="1" height="1" fill="${tint(style.colours[name])}"/><use href="#sym-${name}" width="1" height="1"/>`;
  };
  return Object.keys(names)
    .map((name) => `<span><svg viewBox="0 0 1 1">${definitions(style)}${swatch(name)}</svg>${names[name]}</span>`)
    .join("");
}
