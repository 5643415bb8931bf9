// The service's web page: an image -> boxes on a canvas + a table; a video -> a job followed to its
// annotated result; the past jobs. Plain DOM, no framework, no build step; every call goes to /v1.

const $ = (id) => document.getElementById(id);
const KEY_STORE = "detect-serve.api-key";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 500;
const JOBS_PAGE = 10;
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
  "#469990", "#800000", "#808000", "#000075", "#bfef45", "#fabed4", "#dcbeff", "#ffd8b1", "#aaffc3", "#a9a9a9"];
const state = { models: [], imageFile: null, image: null, sort: { key: "score", dir: -1 }, highlight: null,
  detectCall: 0, videoFile: null, jobId: null, pollTimer: null, jobsOffset: 0 };

class ApiError extends Error {
  constructor(status, body) { super(body.message); this.status = status; this.body = body; }
}

/** An element: el("td", {className: "x"}, "text", child). Text is always set as text, never as HTML. */
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const apiKey = () => localStorage.getItem(KEY_STORE) || "";

/** fetch() with the API key; any answer but 2xx becomes an ApiError carrying the service's error body. */
async function api(path, options = {}) {
  const key = apiKey();
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...(key ? { "X-API-Key": key } : {}), ...options.headers } });
  } catch (err) {
    throw new ApiError(0, { message: `the service cannot be reached (${err.message})` });
  }
  if (response.ok) return response;
  const body = await response.json().then((b) => b.error, () => null);
  const error = new ApiError(response.status, body || { message: `${response.status} ${response.statusText}` });
  if (response.status === 401 && key === apiKey()) showKeyNotice(error); // not an answer to a key since replaced
  throw error;
}
const getJson = async (path, options) => (await api(path, options)).json();

function describe(error) {
  if (!(error instanceof ApiError)) return error.message || String(error);
  const { message, expected, got } = error.body;
  const parts = [message, expected && `expected: ${expected}`, got && `got: ${got}`].filter(Boolean);
  return (error.status ? `Error ${error.status}: ` : "Error: ") + parts.join(" · ");
}
function showError(node, error) {
  if (error.status === 401) return; // the notice at the top says it, once for the whole page
  node.textContent = describe(error);
  node.hidden = false;
}
function clearError(node) { node.textContent = ""; node.hidden = true; }

function showKeyNotice(error) {
  const notice = $("notice");
  notice.textContent = `${apiKey() ? "The API key was refused" : "This service needs an API key"}: enter it at the `
    + `top of the page. (${describe(error)})`;
  notice.hidden = false;
  $("api-key").focus();
}

// ---- models and thresholds ----------------------------------------------------------------------

const currentModel = () => state.models.find((m) => m.name === $("model").value);

async function loadModels() {
  const { models, failed } = await getJson("/v1/models");
  state.models = models;
  $("model").replaceChildren(...models.map((m) =>
    new Option(m.default ? `${m.name} (default)` : m.name, m.name, m.default, m.default)));
  $("model").disabled = models.length === 0;
  const broken = Object.entries(failed);
  $("models-failed").hidden = broken.length === 0;
  $("models-failed").textContent = broken.map(([file, why]) => `${file} not loaded: ${why}`).join("; ");
  showModel();
}

function showModel() {
  const model = currentModel();
  if (!model) return;
  const megabytes = (model.size_bytes / 2 ** 20).toFixed(1);
  $("model-info").textContent = `${model.backend} · ${model.file} · ${megabytes} MB\nversion ${model.version}`;
  $("model-classes-box").querySelector("summary").textContent = `Classes (${model.classes.length})`;
  $("model-classes").replaceChildren(...model.classes.map((name, i) =>
    el("li", { title: `class ${i}` }, el("span", { className: "swatch", style: `background:${colour(i)}` }), name)));
  $("iou").value = model.iou;
  showThresholds();
}

function showThresholds() {
  $("conf-value").textContent = Number($("conf").value).toFixed(2);
  const model = currentModel();
  const iou = Number($("iou").value);
  $("iou-value").textContent = iou.toFixed(2) + (model && iou === model.iou ? " (model default)" : "");
}

/** The query of /v1/detect and the fields of /v1/jobs that the settings panel decides. */
function detectParams() {
  const params = { model: $("model").value, conf: $("conf").value, iou: $("iou").value, max_det: $("max-det").value };
  const classes = $("classes").value.trim();
  if (classes) params.classes = classes;
  return params;
}

// ---- image: detect, draw, table -----------------------------------------------------------------

const colour = (label) => PALETTE[label % PALETTE.length];

async function detectImage() {
  const file = state.imageFile;
  if (!file) return;
  const call = ++state.detectCall; // only the answer to the latest settings is shown
  clearError($("image-error"));
  $("image-drop").classList.add("busy");
  try {
    const form = new FormData();
    form.append("file", file);
    const result = await getJson(`/v1/detect?${new URLSearchParams(detectParams())}`, { method: "POST", body: form });
    if (call === state.detectCall) await showImage(file, result);
  } catch (error) {
    if (call === state.detectCall) showError($("image-error"), error);
  } finally {
    if (call === state.detectCall) $("image-drop").classList.remove("busy");
  }
}

async function showImage(file, result) {
  const img = $("image-preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);
  await img.decode().catch(() => {}); // a format the browser cannot show: the boxes are still drawn
  const { width, height } = result.image;
  const stage = img.parentElement;
  stage.style.aspectRatio = `${width} / ${height}`;
  stage.style.maxWidth = `min(100%, calc(70vh * ${width / height}))`;
  state.image = result;
  state.highlight = null;
  $("image-result").hidden = false;
  renderTable();
  drawBoxes();
  const t = result.timing;
  const count = result.detections.length;
  $("image-summary").textContent = `${count} detection${count === 1 ? "" : "s"} · ${width}×${height} px · `
    + `${result.model.name} (${result.model.backend}) · ${t.total_ms.toFixed(0)} ms`;
  $("timing").textContent = `decode ${t.decode_ms.toFixed(1)} · queue ${t.queue_ms.toFixed(1)} · preprocess `
    + `${t.preprocess_ms.toFixed(1)} · model ${t.model_ms.toFixed(1)} · postprocess ${t.postprocess_ms.toFixed(1)} ms`
    + ` · batch of ${result.batch_size}`;
}

function drawBoxes() {
  const result = state.image;
  const canvas = $("image-canvas");
  if (!result) return;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * dpr);
  canvas.height = Math.round(canvas.clientHeight * dpr);
  const ctx = canvas.getContext("2d");
  const scale = canvas.clientWidth / result.image.width;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "600 12px system-ui, sans-serif";
  ctx.textBaseline = "top";
  result.detections.forEach((d, i) => {
    const [x1, y1, x2, y2] = d.box.map((v) => v * scale);
    const focused = state.highlight === null || state.highlight === i;
    ctx.globalAlpha = focused ? 1 : 0.25;
    ctx.strokeStyle = ctx.fillStyle = colour(d.label);
    ctx.lineWidth = state.highlight === i ? 3 : 2;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${d.name} ${d.score.toFixed(2)}`;
    const w = ctx.measureText(text).width + 6;
    const y = y1 >= 16 ? y1 - 16 : y1;
    ctx.fillRect(x1 - 1, y, w, 16);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x1 + 2, y + 2);
  });
  ctx.globalAlpha = 1;
}

const area = (d) => (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]);
const SORT_KEYS = { index: (d) => d.index, name: (d) => d.name, score: (d) => d.score, area };

function renderTable() {
  const { key, dir } = state.sort;
  const rows = state.image.detections.map((d, index) => ({ ...d, index }));
  rows.sort((a, b) => {
    const [x, y] = [SORT_KEYS[key](a), SORT_KEYS[key](b)];
    return x < y ? -dir : x > y ? dir : 0;
  });
  document.querySelectorAll("#detections th button").forEach((b) => b.parentElement.setAttribute("aria-sort",
    b.dataset.sort === key ? (dir > 0 ? "ascending" : "descending") : "none"));
  const body = $("detections").tBodies[0];
  if (rows.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 5, className: "empty" },
      "No detections above the confidence threshold.")));
    return;
  }
  body.replaceChildren(...rows.map((d) => {
    const [x1, y1, x2, y2] = d.box;
    const row = el("tr", { tabIndex: 0 }, el("td", {}, String(d.index + 1)),
      el("td", {}, el("span", { className: "swatch", style: `background:${colour(d.label)}` }), d.name),
      el("td", { className: "num" }, d.score.toFixed(3)),
      el("td", { className: "num", title: d.box.join(", ") }, d.box.map((v) => v.toFixed(0)).join(", ")),
      el("td", { className: "num" }, `${(x2 - x1).toFixed(0)}×${(y2 - y1).toFixed(0)}`));
    row.dataset.index = d.index;
    const focus = (on) => () => { state.highlight = on ? d.index : null; drawBoxes(); };
    row.addEventListener("mouseenter", focus(true));
    row.addEventListener("mouseleave", focus(false));
    row.addEventListener("focus", focus(true));
    row.addEventListener("blur", focus(false));
    return row;
  }));
}

function sortBy(key) {
  state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : (key === "name" || key === "index" ? 1 : -1) };
  if (state.image) renderTable();
}

// ---- video jobs ---------------------------------------------------------------------------------

async function startJob(event) {
  event.preventDefault();
  clearError($("video-error"));
  const form = new FormData();
  form.append("kind", new FormData($("video-form")).get("kind"));
  Object.entries(detectParams()).forEach(([name, value]) => form.append(name, value));
  form.append("stride", $("stride").value);
  form.append("file", state.videoFile);
  $("video-start").disabled = true;
  try {
    followJob(await getJson("/v1/jobs", { method: "POST", body: form }));
    loadJobs();
  } catch (error) {
    showError($("video-error"), error);
  } finally {
    $("video-start").disabled = !state.videoFile;
  }
}

function followJob(job) {
  clearTimeout(state.pollTimer);
  state.jobId = job.id;
  const video = $("job-video");
  video.hidden = true;
  if (video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
  video.removeAttribute("src");
  $("job-links").replaceChildren();
  renderJob(job);
  if (TERMINAL.has(job.state)) showResult(job); else state.pollTimer = setTimeout(pollJob, POLL_MS);
}

async function pollJob() {
  const id = state.jobId;
  try {
    const job = await getJson(`/v1/jobs/${id}`);
    if (id !== state.jobId) return;
    renderJob(job);
    if (TERMINAL.has(job.state)) { showResult(job); loadJobs(); return; }
    state.pollTimer = setTimeout(pollJob, POLL_MS);
  } catch (error) {
    showError($("video-error"), error);
    if (error.status === 0 || error.status >= 500) state.pollTimer = setTimeout(pollJob, 4 * POLL_MS);
  }
}

function renderJob(job) {
  $("job").hidden = false;
  $("job-title").textContent = `${job.kind} job ${shortId(job.id)}`;
  $("job-title").title = job.id;
  setBadge($("job-state"), job.state);
  $("job-cancel").hidden = TERMINAL.has(job.state);
  const bar = $("job-progress");
  if (job.progress === null || job.progress === undefined) bar.removeAttribute("value"); else bar.value = job.progress;
  const frames = job.total ? `${job.processed ?? 0} of ${job.total} frames` : `${job.processed ?? 0} frames`;
  let when = "";
  if (!TERMINAL.has(job.state) && job.eta_seconds != null) when = ` · about ${formatSeconds(job.eta_seconds)} left`;
  if (job.started_at && job.finished_at) {
    when = ` · took ${formatSeconds((new Date(job.finished_at) - new Date(job.started_at)) / 1000)}`;
  }
  $("job-status").textContent = job.state === "failed" ? `failed: ${job.error || "no reason given"}` : frames + when;
}

async function cancelJob() {
  try {
    const answer = await api(`/v1/jobs/${state.jobId}`, { method: "DELETE" });
    const job = await answer.json().catch(() => null);
    if (job && job.id) renderJob(job);
  } catch (error) {
    showError($("video-error"), error);
  }
}

async function showResult(job) {
  if (job.state !== "succeeded") return;
  let files = job.result_files || {};
  try {
    files = (await getJson(`/v1/jobs/${job.id}/result`)).files || files;
  } catch (error) {
    showError($("video-error"), error);
  }
  const entries = Object.entries(files);
  const [, videoUrl] = entries.find(([name, url]) => /\.webm$|video/i.test(name + url)) || [];
  if (videoUrl) {
    const video = $("job-video");
    try {
      video.src = apiKey() ? await fileUrl(videoUrl) : videoUrl; // <video> cannot send the key: a blob then
      video.hidden = false;
    } catch (error) {
      showError($("video-error"), error);
    }
  }
  const links = entries.length ? entries : [["result (JSON)", `/v1/jobs/${job.id}/result`]];
  $("job-links").replaceChildren(...links.map(([name, url]) => el("li", {}, resultLink(name, url))));
}

/** A link to a result; with an API key the file is fetched with the key (a plain link cannot send it). */
function resultLink(name, url) {
  const link = el("a", { href: url, textContent: name, target: "_blank", rel: "noopener" });
  link.addEventListener("click", async (event) => {
    if (!apiKey()) return;
    event.preventDefault();
    try { window.open(await fileUrl(url), "_blank"); } catch (error) { showError($("video-error"), error); }
  });
  return link;
}
const fileUrl = async (url) => URL.createObjectURL(await (await api(url)).blob());

function formatSeconds(s) {
  if (s < 90) return `${Math.max(1, Math.round(s))} s`;
  return s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}
const shortId = (id) => id.slice(0, 8);
function setBadge(node, jobState) { node.textContent = jobState; node.className = `badge ${jobState}`; }

// ---- past jobs ----------------------------------------------------------------------------------

async function loadJobs() {
  const query = new URLSearchParams({ limit: JOBS_PAGE, offset: state.jobsOffset });
  if ($("jobs-state").value) query.set("state", $("jobs-state").value);
  clearError($("jobs-error"));
  let page;
  try {
    page = await getJson(`/v1/jobs?${query}`);
  } catch (error) {
    showError($("jobs-error"), error);
    return;
  }
  const rows = page.jobs.map((job) => {
    const open = el("button", { type: "button", className: "link", textContent: shortId(job.id),
      title: `job ${job.id}: show it above` });
    open.addEventListener("click", () => { followJob(job); $("video-title").scrollIntoView({ behavior: "smooth" }); });
    const badge = el("span");
    setBadge(badge, job.state);
    const progress = job.progress != null ? `${Math.round(job.progress * 100)} %` : "–";
    const links = Object.entries(job.result_files || {}).map(([name, url]) => {
      const link = resultLink(name.replace(/\.[^.]+$/, ""), url); // "predictions" for predictions.jsonl
      link.title = name;
      return link;
    });
    const created = new Date(job.created_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
    const row = el("tr", {}, el("td", {}, created), el("td", {}, open),
      el("td", {}, job.kind), el("td", {}, job.model ?? ""), el("td", {}, badge),
      el("td", { className: "num" }, progress), el("td", { className: "links" }, ...links));
    row.dataset.job = job.id;
    return row;
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 7, className: "empty" }, "No jobs yet.")));
  $("jobs").tBodies[0].replaceChildren(...rows);
  const last = page.offset + page.jobs.length;
  $("jobs-range").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "";
  $("jobs-prev").disabled = page.offset === 0;
  $("jobs-next").disabled = last >= page.total;
}

function pageJobs(step) {
  state.jobsOffset = Math.max(0, state.jobsOffset + step * JOBS_PAGE);
  loadJobs();
}

// ---- wiring -------------------------------------------------------------------------------------

/** File input + drag and drop on ``zone``: ``onFile(file)`` gets the chosen file. */
function bindFile(zone, input, onFile) {
  input.addEventListener("change", () => input.files[0] && onFile(input.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) onFile(event.dataTransfer.files[0]);
  });
}

async function start() {
  $("api-key").value = apiKey();
  try {
    await loadModels();
  } catch (error) {
    $("model").replaceChildren(new Option("no models", ""));
    showError($("models-failed"), error);
    if (error.status === 401) return;
  }
  await loadJobs();
}

function init() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
    $("notice").hidden = true;
    start();
  });
  $("model").addEventListener("change", () => { showModel(); detectImage(); });
  ["conf", "iou"].forEach((id) => $(id).addEventListener("input", showThresholds));
  ["conf", "iou", "max-det", "classes"].forEach((id) => $(id).addEventListener("change", detectImage));
  bindFile($("image-drop"), $("image-file"), (file) => { state.imageFile = file; detectImage(); });
  bindFile($("video-drop"), $("video-file"), (file) => {
    state.videoFile = file;
    $("video-name").textContent = `${file.name} (${(file.size / 2 ** 20).toFixed(1)} MB)`;
    $("video-start").disabled = false;
  });
  document.querySelectorAll("#detections th button")
    .forEach((b) => b.addEventListener("click", () => sortBy(b.dataset.sort)));
  $("video-form").addEventListener("submit", startJob);
  $("job-cancel").addEventListener("click", cancelJob);
  $("jobs-refresh").addEventListener("click", loadJobs);
  $("jobs-state").addEventListener("change", () => { state.jobsOffset = 0; loadJobs(); });
  $("jobs-prev").addEventListener("click", () => pageJobs(-1));
  $("jobs-next").addEventListener("click", () => pageJobs(1));
  new ResizeObserver(drawBoxes).observe($("image-canvas"));
  start();
}

init();
