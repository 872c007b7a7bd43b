// sipbox web admin: sends the pages' forms and buttons to the JSON API, and refreshes the
// live numbers. No framework and no build step, on purpose.
//
//   <form data-api="POST /users" data-then="reload">   fields -> JSON body
//   <button data-api="DELETE /bans?source=..." data-confirm="Sure?">
//
// Field types (data-type): int/float ("" -> null), list (comma/space separated), members
// ("1001, 1002:15"), optional ("" -> left out), null ("" -> null); checkboxes send true/false;
// a dotted name ("forwarding.busy") fills a nested object. Buttons may carry data-body (JSON)
// and data-busy (label while the request runs). data-then: reload (default),
// redirect:/path, show:element-id (fills [data-field=name] inside it from the answer).
// Every request carries the session's CSRF token (X-CSRF-Token), which the server demands.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

class ApiFailure extends Error {
  constructor(message, field) { super(message); this.field = field; }
}

async function api(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken() },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new ApiFailure("your session has ended; log in again");
  }
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch (e) { data = null; }
  }
  if (!response.ok) {
    throw new ApiFailure((data && data.error) || `${response.status} ${response.statusText}`,
                         data && data.field);
  }
  return data;
}

// "1001, 1002:15" -> ["1001", {number: "1002", timeout: 15}] (group members, ring seconds).
function members(value) {
  return value.split(/[\s,]+/).filter(Boolean).map((item) => {
    const [number, timeout] = item.split(":");
    return timeout ? { number, timeout: Number.parseInt(timeout, 10) } : number;
  });
}

function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    const kind = el.dataset.type;
    const value = el.value.trim();
    // "forwarding.busy" fills body.forwarding.busy (nested objects of the API).
    const path = el.name.split(".");
    let target = body;
    for (const part of path.slice(0, -1)) target = target[part] ??= {};
    const name = path[path.length - 1];
    if (el.type === "checkbox") target[name] = el.checked;
    else if (kind === "int") target[name] = value === "" ? null : Number.parseInt(value, 10);
    else if (kind === "float") target[name] = value === "" ? null : Number.parseFloat(value);
    else if (kind === "list") target[name] = value.split(/[\s,]+/).filter(Boolean);
    else if (kind === "members") target[name] = members(value);
    else if (kind === "optional") { if (value !== "") target[name] = value; }
    else if (kind === "null") target[name] = value === "" ? null : value;
    else target[name] = el.type === "password" ? el.value : value;
  }
  return body;
}

function splitTarget(spec) {
  const at = spec.indexOf(" ");
  return [spec.slice(0, at).toUpperCase(), spec.slice(at + 1)];
}

function afterSuccess(then, data) {
  if (!then || then === "reload") { location.reload(); return; }
  // "secret:box": a password the server made up is shown once in the box; none -> reload.
  if (then.startsWith("secret:")) {
    if (!data || !data.password) { location.reload(); return; }
    then = "show:" + then.slice(7);
  }
  if (then.startsWith("redirect:")) { location.assign(then.slice(9)); return; }
  if (then.startsWith("show:")) {
    const box = document.getElementById(then.slice(5));
    for (const slot of box.querySelectorAll("[data-field]")) {
      slot.textContent = data ? data[slot.dataset.field] : "";
    }
    box.hidden = false;
  }
}

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  const [method, path] = splitTarget(form.dataset.api);
  const errorBox = form.querySelector(".form-error");
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  if (errorBox) errorBox.textContent = "";
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  try {
    const data = await api(method, path, method === "DELETE" ? undefined : formBody(form));
    afterSuccess(form.dataset.then, data);
  } catch (error) {
    if (errorBox) errorBox.textContent = error.message;
    else alert(error.message);
    const field = error.field && form.querySelector(`[name="${CSS.escape(error.field)}"]`);
    if (field) { field.setAttribute("aria-invalid", "true"); field.focus(); }
  } finally {
    if (button) button.disabled = false;
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-api]");
  // A form's own submit button is handled by the submit listener; other buttons with
  // data-api (a Delete inside an edit form) make their own request.
  if (!button || (button.type === "submit" && button.form?.dataset.api)) return;
  event.preventDefault();
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  const [method, path] = splitTarget(button.dataset.api);
  button.disabled = true;
  const label = button.textContent;
  if (button.dataset.busy) button.textContent = button.dataset.busy;  // e.g. "Testing..."
  try {
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    const data = await api(method, path, body);
    afterSuccess(button.dataset.then, data);
    if (button.dataset.then?.startsWith("show:")) button.disabled = false;
  } catch (error) {
    alert(error.message);
    button.disabled = false;
  } finally {
    button.textContent = label;
  }
});

// ---- live parts -------------------------------------------------------------------------

function pick(object, dotted) {
  return dotted.split(".").reduce((o, k) => (o == null ? undefined : o[k]), object);
}

function ago(seconds) {
  let rest = Math.max(0, Math.floor(seconds));
  if (rest < 60) return `${rest}s`;
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (rest >= size) { parts.push(`${Math.floor(rest / size)}${unit}`); rest %= size; }
  }
  return parts.slice(0, 2).join(" ");
}

async function refreshStatus(root) {
  const status = await api("GET", "/status");
  const values = { ...status, uptime: ago(status.uptime_seconds) };
  for (const el of root.ownerDocument.querySelectorAll("[data-live]")) {
    const value = pick(values, el.dataset.live);
    if (value !== undefined) el.textContent = value === null ? "-" : value;
  }
}

function pill(text, kind) {
  const span = document.createElement("span");
  span.className = "pill" + (kind ? " " + kind : "");
  span.textContent = text;
  return span;
}

async function refreshRegistrations(table) {
  const regs = await api("GET", "/registrations");
  const users = await api("GET", "/users?limit=1000");
  const byUser = new Map(users.users.map((u) => [u.number, u]));
  const sources = new Map();
  for (const r of regs.registrations) {
    if (!sources.has(r.number)) sources.set(r.number, []);
    sources.get(r.number).push(r.source);
  }
  for (const row of table.querySelectorAll("tr[data-number]")) {
    const user = byUser.get(row.dataset.number);
    if (!user) continue;
    const state = row.querySelector(".state");
    let shown;
    if (!user.enabled) shown = pill("disabled", "off");
    else if (user.registrations) shown = pill(`registered (${user.registrations})`, "ok");
    else if (user.reachable) shown = pill("reachable by IP", "ok");
    else shown = pill("not registered", "off");
    state.replaceChildren(shown);
    const cell = row.querySelector(".sources");
    const list = sources.get(user.number) || [];
    cell.replaceChildren(...(list.length ? list.map((s) => {
      const code = document.createElement("code"); code.textContent = s + " "; return code;
    }) : [Object.assign(document.createElement("span"), { className: "muted", textContent: "-" })]));
  }
}

function every(seconds, task) {
  const run = () => task().catch(() => {}).finally(() => setTimeout(run, seconds * 1000));
  setTimeout(run, seconds * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector("[data-live-status]");
  if (status) every(5, () => refreshStatus(status));
  const regs = document.querySelector("[data-live-registrations]");
  if (regs) every(3, () => refreshRegistrations(regs));
});

// The call page: an arrow of the ladder links to #msg-N; open that raw message.
function openTarget() {
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === "DETAILS") target.open = true;
}
window.addEventListener("hashchange", openTarget);
document.addEventListener("DOMContentLoaded", openTarget);
