// dropline demo player: picks a stream, plays it with hls.js in low-latency mode and shows
// live latency measured against the wall clock (PROGRAM-DATE-TIME).
//
// Query parameters:
//   ?stream=NAME                  play /NAME/index.m3u8 from the page's origin (else the first stream)
//   ?src=http://host:port/NAME/index.m3u8
//                                 play this playlist instead; the stream list is read from that origin
//   ?height=H                     pin the variant of that height instead of ABR
//   ?carriage=emsg|daterange      the player SDK reads cues from that carriage only (default both)
//
// window.droplineStats() returns a plain object for tests (see `stats()` below).
// window.droplineCues lists the commerce cues the player SDK fired (see `recordCue()` below);
// window.droplineOverlay is the SDK object attached to the current hls.js instance (for tests).
// window.droplineSwitchTo(height) switches to the variant of that height with what it loads next
// (hls.js `nextLevel`, as its ABR does), or back to ABR with `null`; true if found.

const HLS_SCRIPT_CANDIDATES = [
  // Served by the gateway: /vendor/hls.js -> web/node_modules/hls.js/dist/hls.min.js
  'vendor/hls.js',
  // Served as plain files (python3 -m http.server in web/, nginx, …)
  'node_modules/hls.js/dist/hls.min.js',
];
// The player SDK (overlay/sdk): the gateway serves it at /sdk/; a checkout served as plain files
// (python3 -m http.server at the repository root, page at /web/) has it at ../overlay/sdk/.
const SDK_CANDIDATES = ['./sdk/dropline-overlay.mjs', '../overlay/sdk/dropline-overlay.mjs'];
const MAX_KEPT_CUES = 1000;
const STREAM_POLL_MS = 2000;
const OVERLAY_MS = 250;
const MAX_KEPT_ERRORS = 50;

const $ = (id) => document.getElementById(id);
const video = $('video');
const picker = $('stream');
const statusEl = $('status');
const overlay = $('overlay');
const playlistLink = $('playlist-url');
const cueEls = {
  badge: $('stage-badge'),
  soldout: $('soldout'),
  card: $('card'),
  image: $('card-image'),
  title: $('card-title'),
  price: $('card-price'),
  offer: $('offer'),
  offerLabel: $('offer-label'),
  countdown: $('offer-countdown'),
};

const params = new URLSearchParams(location.search);
const srcOverride = params.get('src');
const apiOrigin = srcOverride ? new URL(srcOverride, location.href).origin : location.origin;

const state = {
  hls: null,
  src: null,
  stream: null,
  ready: false, // manifest parsed and media playlist loaded
  firstPlaying: false,
  stalledErrors: 0, // hls.js BUFFER_STALLED_ERROR after the first 'playing'
  waitingEvents: 0, // <video> 'waiting' after the first 'playing'
  stallLog: [], // first MAX_KEPT_ERRORS stalls: {t, kind, currentTime, bufferMs}
  errors: [], // last MAX_KEPT_ERRORS errors, oldest first
  hlsWarnings: [], // last MAX_KEPT_ERRORS hls.js warnings and errors: why it stalled or skipped
  errorCount: 0,
  fatalCount: 0,
  recoveries: 0,
  firstPlayingAt: null, // ms since page load
};

const cues = {
  sdk: null, // the SDK module once imported (null: not available, the page plays without cues)
  overlay: null, // attached to state.hls
  schedule: null, // one per stream, shared by re-attachments so no cue fires twice
  offerEndsAt: null, // media time the open offer closes, null when none or no duration
};
window.droplineCues = [];

function setStatus(text, cls = '') {
  statusEl.textContent = text;
  statusEl.className = cls;
}

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = url;
    s.async = true;
    s.onload = () => resolve(url);
    s.onerror = () => {
      s.remove();
      reject(new Error(`failed to load ${url}`));
    };
    document.head.appendChild(s);
  });
}

async function loadSdk() {
  for (const url of SDK_CANDIDATES) {
    try {
      return await import(url);
    } catch {
      // try the next location
    }
  }
  return null;
}

async function loadHlsJs() {
  if (window.Hls) return window.Hls;
  for (const url of HLS_SCRIPT_CANDIDATES) {
    try {
      await loadScript(url);
      if (window.Hls) return window.Hls;
    } catch {
      // try the next location
    }
  }
  return null;
}

// name -> { url, live } from the last /api/v1/streams answer.
const known = new Map();

function playlistUrl(name) {
  const entry = known.get(name);
  if (entry && entry.url) return new URL(entry.url, `${apiOrigin}/`).href;
  return `${apiOrigin}/${encodeURIComponent(name)}/index.m3u8`;
}

// GET /api/v1/streams -> {"streams":[{"name":"demo","url":"/demo/index.m3u8","live":true}, …]}
// (`url` and `live` are optional).
async function fetchStreams() {
  const res = await fetch(`${apiOrigin}/api/v1/streams`, { cache: 'no-store' });
  if (!res.ok) throw new Error(`GET /api/v1/streams: HTTP ${res.status}`);
  const body = await res.json();
  known.clear();
  for (const s of body.streams || []) {
    if (s && s.name) known.set(s.name, { url: s.url, live: s.live });
  }
  return [...known.keys()];
}

function optionLabel(name) {
  if (!name) return srcOverride ? '(custom source)' : '(no streams)';
  return known.get(name)?.live === false ? `${name} (offline)` : name;
}

function fillPicker(names, selected) {
  let wanted = names;
  if ((srcOverride && !names.includes(selected)) || names.length === 0) wanted = ['', ...names];
  const labels = wanted.map(optionLabel);
  const current = [...picker.options].map((o) => o.textContent);
  if (current.join('\n') !== labels.join('\n')) {
    picker.replaceChildren(
      ...wanted.map((n, i) => {
        const o = document.createElement('option');
        o.value = n;
        o.textContent = labels[i];
        return o;
      }),
    );
  }
  picker.value = selected ?? '';
}

function recordError(data) {
  const entry = {
    t: Math.round(performance.now()),
    type: data.type,
    details: data.details,
    fatal: !!data.fatal,
  };
  if (data.response && data.response.code !== undefined) entry.httpStatus = data.response.code;
  if (data.reason) entry.reason = String(data.reason);
  if (data.error && data.error.message) entry.message = data.error.message;
  if (data.frag) entry.frag = { sn: data.frag.sn, url: data.frag.url };
  if (data.part) entry.part = { index: data.part.index, url: data.part.url };
  if (data.context && data.context.url) entry.url = data.context.url;
  state.errors.push(entry);
  if (state.errors.length > MAX_KEPT_ERRORS) state.errors.shift();
  state.errorCount += 1;
  if (entry.fatal) state.fatalCount += 1;
}

// hls.js's warn/error log lines (its debug log stays off: too costly to keep).
function hlsLogger() {
  const keep = (level) => (...args) => {
    state.hlsWarnings.push(
      `${Math.round(performance.now())} ms @${roundOrNull(video.currentTime, 3)} ${level}: ${args.map(String).join(' ')}`,
    );
    if (state.hlsWarnings.length > MAX_KEPT_ERRORS) state.hlsWarnings.shift();
  };
  const off = () => {};
  return { debug: off, log: off, info: off, warn: keep('warn'), error: keep('error') };
}

function logStall(kind) {
  if (state.stallLog.length >= MAX_KEPT_ERRORS) return;
  state.stallLog.push({
    t: Math.round(performance.now()),
    kind,
    currentTime: roundOrNull(video.currentTime, 3),
    bufferMs: bufferAheadMs(),
    seeking: video.seeking,
  });
}

function destroyPlayer() {
  if (cues.overlay) {
    cues.overlay.detach();
    cues.overlay = null;
  }
  if (state.hls) {
    state.hls.destroy();
    state.hls = null;
  }
  video.removeAttribute('src');
  video.load();
  state.ready = false;
  state.firstPlaying = false;
  state.firstPlayingAt = null;
}

function startPlayback(Hls, src, stream) {
  destroyPlayer();
  if (src !== state.src) resetCues();
  state.src = src;
  state.stream = stream;
  playlistLink.textContent = src;
  playlistLink.href = src;

  if (!Hls || !Hls.isSupported()) {
    if (video.canPlayType('application/vnd.apple.mpegurl')) {
      // Native HLS (Safari): no hls.js statistics, but the page still plays.
      video.src = src;
      state.ready = true;
      video.play().catch(() => {});
      setStatus('native HLS playback', 'warn');
      return;
    }
    setStatus('this browser supports neither MSE nor native HLS', 'bad');
    return;
  }

  const hls = new Hls({
    lowLatencyMode: true,
    // No liveSyncDuration/liveSyncDurationCount: hls.js then targets the playlist's PART-HOLD-BACK.
    // backBufferLength stays at its default (no trimming; the browser evicts when it must): a
    // trim of the back buffer while a part of the current segment is appending makes hls.js
    // 1.7.4 drop that segment as evicted, mark it a gap and stall ("Found no media").
    // Let hls.js catch up to the target latency by playing slightly faster (only with > 1 s buffered).
    maxLiveSyncPlaybackRate: 1.5,
    enableWorker: true,
    debug: hlsLogger(),
  });
  state.hls = hls;
  attachCues(hls);

  hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
    // `?height=H` pins the variant of that height (an ABR ladder rung) instead of ABR.
    const pinned = data.levels.findIndex((l) => l.height === Number(params.get('height')));
    if (pinned >= 0) hls.currentLevel = pinned;
    video.play().catch(() => {});
  });
  hls.on(Hls.Events.LEVEL_LOADED, () => {
    if (!state.ready) {
      state.ready = true;
      setStatus(`loaded ${stream || src}`, 'ok');
    }
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    recordError(data);
    if (!data.fatal) {
      if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR && state.firstPlaying) {
        state.stalledErrors += 1;
        logStall('hls.js BUFFER_STALLED_ERROR');
      }
      return;
    }
    setStatus(`fatal ${data.type}: ${data.details}`, 'bad');
    state.recoveries += 1;
    const manifestFailed = [
      Hls.ErrorDetails.MANIFEST_LOAD_ERROR,
      Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT,
      Hls.ErrorDetails.MANIFEST_PARSING_ERROR,
    ].includes(data.details);
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
    } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR && !manifestFailed) {
      setTimeout(() => state.hls === hls && hls.startLoad(), 1000);
    } else {
      setTimeout(() => state.hls === hls && startPlayback(Hls, src, stream), 2000);
    }
  });

  hls.loadSource(src);
  hls.attachMedia(video);
  setStatus(`connecting to ${stream || src}…`);
}

video.addEventListener('playing', () => {
  if (!state.firstPlaying) {
    state.firstPlaying = true;
    state.firstPlayingAt = Math.round(performance.now());
  }
  setStatus(`playing ${state.stream || state.src}`, 'ok');
});
video.addEventListener('waiting', () => {
  if (state.firstPlaying) {
    state.waitingEvents += 1;
    logStall('video waiting');
    setStatus('buffering…', 'warn');
  }
});

function currentDetails() {
  const hls = state.hls;
  if (!hls || !hls.levels || hls.levels.length === 0) return null;
  const idx = hls.currentLevel >= 0 ? hls.currentLevel : 0;
  const level = hls.levels[idx] || hls.levels[0];
  return (level && level.details) || null;
}

function bufferAheadMs() {
  const t = video.currentTime;
  const b = video.buffered;
  for (let i = 0; i < b.length; i += 1) {
    if (b.start(i) <= t + 0.1 && t <= b.end(i)) return Math.round((b.end(i) - t) * 1000);
  }
  return 0;
}

function roundOrNull(x, digits = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function stats() {
  const hls = state.hls;
  const details = currentDetails();
  const playingDate = hls ? hls.playingDate : null;
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  return {
    ready: state.ready,
    stream: state.stream,
    src: state.src,
    hlsVersion: window.Hls ? window.Hls.version : null,
    canBlockReload: details ? !!details.canBlockReload : false,
    canSkipUntil: details ? details.canSkipUntil || 0 : 0,
    partCount: details && details.partList ? details.partList.length : 0,
    // EXT-X-MEDIA TYPE=AUDIO renditions hls.js found in the multivariant playlist.
    audioTracks: hls && hls.audioTracks ? hls.audioTracks.length : 0,
    partTarget: details ? details.partTarget || 0 : 0,
    partHoldBack: details ? details.partHoldBack || 0 : 0,
    targetDuration: details ? details.targetduration : 0,
    // Glass-to-glass-ish: wall clock now minus PROGRAM-DATE-TIME of the frame being shown.
    latencyMs: playingDate ? Date.now() - playingDate.getTime() : null,
    // hls.js's own estimate: live edge minus currentTime, in seconds.
    hlsLatency: hls ? roundOrNull(hls.latency, 3) : null,
    targetLatency: hls ? roundOrNull(hls.targetLatency, 3) : null,
    bufferMs: bufferAheadMs(),
    stalls: state.stalledErrors + state.waitingEvents,
    stalledErrors: state.stalledErrors,
    waitingEvents: state.waitingEvents,
    stallLog: state.stallLog.slice(),
    playing: state.firstPlaying && !video.paused && !video.ended && video.readyState >= 3,
    firstPlayingAtMs: state.firstPlayingAt,
    currentTime: roundOrNull(video.currentTime, 3),
    playbackRate: video.playbackRate,
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    droppedFrames: q ? q.droppedVideoFrames : null,
    totalFrames: q ? q.totalVideoFrames : null,
    errorCount: state.errorCount,
    fatalCount: state.fatalCount,
    recoveries: state.recoveries,
    errors: state.errors.slice(),
    hlsWarnings: state.hlsWarnings.slice(),
  };
}
window.droplineStats = stats;

window.droplineSwitchTo = (height) => {
  const hls = state.hls;
  if (!hls) return false;
  const level = height === null ? -1 : hls.levels.findIndex((l) => l.height === height);
  if (height !== null && level < 0) return false;
  hls.nextLevel = level;
  return true;
};

// ---------------------------------------------------------------------------------------------
// Commerce cues: product card, stock-stage badge, sold-out banner, offer countdown.
//
// Payload fields the page reads (all optional): card and offer {title, price, image},
// stage {label}. The countdown runs on media time, so every viewer sees the same number at the
// same moment of the show whatever their latency.

function text(v) {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

function recordCue(d) {
  window.droplineCues.push({
    id: d.id,
    kind: d.kind,
    type: d.type,
    state: d.state,
    payload: d.payload,
    mediaTime: d.mediaTime, // intended
    firedAt: d.firedAt, // media time of the frame on screen when it fired
    currentTime: d.currentTime,
    late: d.late,
    carriage: d.carriage,
    wallMs: Date.now(),
  });
  if (window.droplineCues.length > MAX_KEPT_CUES) window.droplineCues.shift();
}

function showCard(payload) {
  const p = payload && typeof payload === 'object' ? payload : {};
  cueEls.title.textContent = text(p.title) || text(p.name) || text(p.sku);
  cueEls.price.textContent = text(p.price);
  const image = text(p.image);
  const safe = /^https?:\/\//.test(image);
  cueEls.image.hidden = !safe;
  if (safe) cueEls.image.src = image;
  else cueEls.image.removeAttribute('src');
  cueEls.card.hidden = false;
}

function onOffer(d) {
  if (d.state === 'open') {
    showCard(d.payload);
    cueEls.offerLabel.textContent = 'Offer ends in';
    cues.offerEndsAt = d.durationMs === null ? null : d.mediaTime + d.durationMs / 1000;
    cueEls.offer.hidden = false;
    renderCountdown();
  } else {
    cues.offerEndsAt = null;
    cueEls.offer.hidden = true;
  }
}

function renderCountdown() {
  if (cueEls.offer.hidden) return;
  if (cues.offerEndsAt === null) {
    cueEls.countdown.textContent = '';
    cueEls.offerLabel.textContent = 'Offer open';
    return;
  }
  const left = Math.ceil(cues.offerEndsAt - video.currentTime);
  if (left <= 0) {
    cueEls.offer.hidden = true;
    return;
  }
  cueEls.countdown.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
}

function resetCues() {
  cues.schedule = null;
  cues.offerEndsAt = null;
  for (const el of [cueEls.badge, cueEls.soldout, cueEls.card, cueEls.offer]) el.hidden = true;
}

function attachCues(hls) {
  if (!cues.sdk) return;
  cues.schedule ??= new cues.sdk.CueSchedule();
  const carriage = params.get('carriage');
  const overlay = cues.sdk.attachOverlay(hls, video, {
    schedule: cues.schedule,
    carriages: ['emsg', 'daterange'].includes(carriage) ? [carriage] : undefined,
  });
  cues.overlay = overlay;
  window.droplineOverlay = overlay;
  overlay.addEventListener('cue', (e) => recordCue(e.detail));
  overlay.addEventListener('card', (e) => showCard(e.detail.payload));
  overlay.addEventListener('offer', (e) => onOffer(e.detail));
  overlay.addEventListener('stage', (e) => {
    cueEls.badge.textContent = text(e.detail.payload?.label) || text(e.detail.payload?.stage);
    cueEls.badge.hidden = !cueEls.badge.textContent;
  });
  overlay.addEventListener('soldout', () => {
    cueEls.soldout.hidden = false;
    cueEls.offer.hidden = true;
    cues.offerEndsAt = null;
  });
}

function fmtMs(ms) {
  return ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(2)} s`;
}
function fmtS(s) {
  return s === null || s === undefined ? '—' : `${s.toFixed(2)} s`;
}

function renderOverlay() {
  const s = stats();
  overlay.innerHTML = [
    `latency      <b>${fmtMs(s.latencyMs)}</b>`,
    `hls.latency  ${fmtS(s.hlsLatency)} (target ${fmtS(s.targetLatency)})`,
    `buffer       ${fmtMs(s.bufferMs)}`,
    `stalls       ${s.stalls}`,
    `rate         ${s.playbackRate.toFixed(2)}×`,
    `parts        ${s.partCount} × ${s.partTarget ? s.partTarget.toFixed(3) : '—'} s` +
      `  ${s.canBlockReload ? 'blocking' : 'polling'}`,
    `video        ${s.videoWidth}×${s.videoHeight}` +
      (s.droppedFrames ? `  dropped ${s.droppedFrames}` : ''),
    `errors       ${s.errorCount}${s.fatalCount ? ` (${s.fatalCount} fatal)` : ''}`,
  ].join('\n');
}

async function main() {
  setInterval(() => {
    renderOverlay();
    renderCountdown();
  }, OVERLAY_MS);
  renderOverlay();

  const [Hls, sdk] = await Promise.all([loadHlsJs(), loadSdk()]);
  cues.sdk = sdk;
  if (!sdk) console.warn('dropline player SDK not found: playing without commerce cues');
  if (!Hls) setStatus('could not load hls.js', 'bad');

  let names = [];
  let selected = params.get('stream');
  if (srcOverride && !selected) {
    // http://host:port/NAME/index.m3u8 -> NAME, so the picker shows it.
    const m = /^\/([^/]+)\/index\.m3u8$/.exec(new URL(srcOverride, location.href).pathname);
    if (m) selected = decodeURIComponent(m[1]);
  }

  if (srcOverride) {
    startPlayback(Hls, srcOverride, selected);
  }

  picker.addEventListener('change', () => {
    const name = picker.value;
    if (!name) return;
    const url = new URL(location.href);
    url.searchParams.delete('src');
    url.searchParams.set('stream', name);
    if (!srcOverride) history.replaceState(null, '', url);
    selected = name;
    Object.assign(state, { stalledErrors: 0, waitingEvents: 0, stallLog: [] });
    startPlayback(Hls, playlistUrl(name), name);
  });

  // Poll the stream list: streams come and go as publishers connect.
  for (;;) {
    try {
      names = await fetchStreams();
      if (!srcOverride && !state.src) {
        const firstLive = names.find((n) => known.get(n).live !== false) ?? names[0];
        const pick = selected ? (names.includes(selected) ? selected : null) : firstLive;
        if (pick) {
          selected = pick;
          startPlayback(Hls, playlistUrl(pick), pick);
        } else if (selected) {
          setStatus(`waiting for stream "${selected}"…`, 'warn');
        } else {
          setStatus('no streams yet — publish to srt://HOST:9000?streamid=publish:NAME', 'warn');
        }
      }
      fillPicker(names, srcOverride ? selected : state.stream);
    } catch (e) {
      if (!state.src) setStatus(String(e.message || e), 'bad');
      if (picker.options.length === 1 && picker.options[0].value === '') {
        picker.options[0].textContent = srcOverride ? '(custom source)' : 'unavailable';
      }
    }
    await new Promise((r) => setTimeout(r, STREAM_POLL_MS));
  }
}

main();
