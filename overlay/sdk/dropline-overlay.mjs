// dropline player SDK: reads the overlay's cues from both carriages of an hls.js stream and fires
// them as DOM events at their presentation time, once per cue id.
//
// The wire format is fixed by the cue carriage contract (coord/overlay-contract.md, summarised in
// README.md next to this file):
//   - emsg v1, scheme "https://aomedia.org/emsg/ID3": an ID3v2.4 tag with one TXXX frame whose
//     description is "com.dropline.cue" and whose value is the cue JSON. hls.js hands the ID3 bytes
//     and the media time over in Hls.Events.FRAG_PARSING_METADATA.
//   - EXT-X-DATERANGE with CLASS "com.dropline.<kind>", START-DATE and X-PAYLOAD = base64url(cue JSON),
//     read from LevelDetails.dateRanges; START-DATE is mapped onto the media timeline through the
//     playlist's EXT-X-PROGRAM-DATE-TIME.
//
// Everything but `attachOverlay` is pure (no clock, no DOM) and exported for the unit tests.

/**
 * @typedef {'offer-open' | 'offer-close' | 'stock-stage' | 'product-card' | 'sold-out' | 'custom'} CueKind
 */
/** @typedef {'offer' | 'stage' | 'card' | 'soldout' | 'custom'} CueEventType */
/** @typedef {'emsg' | 'daterange'} Carriage */

/**
 * A cue as carried on the wire, validated.
 * @typedef {object} Cue
 * @property {string} id          1..=64 chars of [A-Za-z0-9_.-], never reused
 * @property {CueKind} kind
 * @property {unknown} payload    any JSON value (null when absent)
 * @property {string} start       program date-time of the cue's media time (RFC 3339)
 * @property {number} startMs     `start` in ms since the Unix epoch
 * @property {number | null} durationMs  null when unknown (the cue then stays active)
 */

/**
 * `event.detail` of every event an overlay dispatches.
 * @typedef {object} CueDetail
 * @property {string} id
 * @property {CueKind} kind
 * @property {CueEventType} type  the event type this cue is dispatched as
 * @property {'open' | 'closed'} [state]  offers only: offer-open -> "open", offer-close -> "closed"
 * @property {unknown} payload
 * @property {string} start
 * @property {number | null} durationMs
 * @property {number} mediaTime   intended media time (seconds on the video's timeline)
 * @property {number} firedAt     media time when it fired: the presented frame's mediaTime with
 *                                requestVideoFrameCallback, else video.currentTime
 * @property {number} currentTime video.currentTime when it fired
 * @property {boolean} late       fired after its time (joined or seeked past its start, inside its
 *                                duration) rather than on schedule
 * @property {Carriage} carriage  which carriage delivered it first
 */

/**
 * @typedef {object} OverlayOptions
 * @property {number} [lateToleranceS]  fired more than this after its time = late (default 0.1 s)
 * @property {number} [historyLimit]    length of `overlay.fired` (default 500)
 * @property {number} [maxPending]      cues waiting at most (default 1000)
 * @property {boolean} [useVideoFrameCallback]  default true where the browser has it
 * @property {(msg: string) => void} [log]  malformed input and dropped cues (default console.debug)
 * @property {() => number} [now]       monotonic ms clock (default performance.now; tests pass a fake)
 * @property {CueSchedule} [schedule]   share one across re-attachments (a new Hls after a fatal
 *                                      error) so that no cue fires twice
 * @property {Carriage[]} [carriages]   the carriages read (default both): one alone serves a path that
 *                                      strips the other (e.g. a packager dropping emsg boxes)
 */

/** Wire kind -> [event type, offer state]. */
const KINDS = new Map([
  ['offer-open', ['offer', 'open']],
  ['offer-close', ['offer', 'closed']],
  ['stock-stage', ['stage', undefined]],
  ['product-card', ['card', undefined]],
  ['sold-out', ['soldout', undefined]],
  ['custom', ['custom', undefined]],
]);

export const TXXX_DESCRIPTION = 'com.dropline.cue';
export const DATERANGE_CLASS_PREFIX = 'com.dropline.';
const CUE_ID = /^[A-Za-z0-9_.-]{1,64}$/;
// The payload is at most 16 KiB serialized; the whole JSON a little more. Anything far larger is not
// ours and is not worth parsing.
const MAX_CUE_JSON_BYTES = 64 * 1024;
// Metadata sample types hls.js reports for ID3 carried in emsg (fMP4) and in MPEG-TS.
const ID3_SAMPLE_TYPES = new Set(['https://aomedia.org/emsg/ID3', 'org.id3']);

/** Malformed input: the SDK logs it with console.debug and carries on. */
export class CueError extends Error {
  name = 'CueError';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

// ---------------------------------------------------------------------------------------------
// ID3v2 (id3.org id3v2.4.0-structure): a 10-byte header "ID3", major version, revision, flags and a
// 28-bit syncsafe size (4 bytes, top bit of each 0), then frames of a 10-byte header (4-char id,
// size — syncsafe in v2.4, plain in v2.3 — and 2 flag bytes) and their data.

/** A 28-bit syncsafe integer at `off`, or -1 when a byte has its top bit set. */
export function readSyncsafe(bytes, off) {
  let n = 0;
  for (let i = 0; i < 4; i += 1) {
    const b = bytes[off + i];
    if (b & 0x80) return -1;
    n = (n << 7) | b;
  }
  return n;
}

function readU32(bytes, off) {
  return ((bytes[off] << 24) >>> 0) + ((bytes[off + 1] << 16) | (bytes[off + 2] << 8) | bytes[off + 3]);
}

/**
 * Every TXXX frame in a buffer of one or more ID3v2.3/2.4 tags, as { description, value }.
 * Frames this reader cannot take apart (compressed, encrypted, unsynchronised, UTF-16) are skipped.
 * @param {Uint8Array} bytes
 * @returns {{ description: string, value: string }[]}
 * @throws {CueError} when the tag structure is broken
 */
export function readTxxxFrames(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new CueError('ID3 data is not a Uint8Array');
  const frames = [];
  let tag = 0;
  while (tag + 10 <= bytes.length) {
    if (bytes[tag] !== 0x49 || bytes[tag + 1] !== 0x44 || bytes[tag + 2] !== 0x33) {
      if (tag === 0) throw new CueError('no ID3 header');
      break; // trailing padding after the last tag
    }
    const major = bytes[tag + 3];
    const flags = bytes[tag + 5];
    const size = readSyncsafe(bytes, tag + 6);
    if (major !== 3 && major !== 4) throw new CueError(`ID3v2.${major} is not supported`);
    if (size < 0) throw new CueError('ID3 tag size is not syncsafe');
    const end = tag + 10 + size;
    if (end > bytes.length) {
      throw new CueError(`ID3 tag of ${size} bytes overruns ${bytes.length - tag - 10}`);
    }
    // §3.1: flag bit 7 unsynchronisation (the contract writes none), bit 6 extended header.
    if (flags & 0x80) throw new CueError('unsynchronised ID3 tags are not supported');
    let off = tag + 10;
    if (flags & 0x40) {
      const ext = major === 4 ? readSyncsafe(bytes, off) : readU32(bytes, off) + 4;
      if (ext < 6 || off + ext > end) throw new CueError('bad ID3 extended header');
      off += ext;
    }
    while (off + 10 <= end && bytes[off] !== 0) {
      const id = latin1.decode(bytes.subarray(off, off + 4));
      const frameSize = major === 4 ? readSyncsafe(bytes, off + 4) : readU32(bytes, off + 4);
      const formatFlags = bytes[off + 9];
      const data = off + 10;
      if (frameSize < 0 || data + frameSize > end) throw new CueError(`ID3 frame ${id} overruns its tag`);
      // v2.4 §4.1.2 format flags: compression 0x08, encryption 0x04, unsynchronisation 0x02,
      // data length indicator 0x01 (v2.3 uses 0x80/0x40/0x20 for compression/encryption/grouping).
      const transformed = major === 4 ? formatFlags & 0x0f : formatFlags & 0xe0;
      if (id === 'TXXX' && !transformed && frameSize >= 1) {
        const txxx = decodeTxxx(bytes.subarray(data, data + frameSize));
        if (txxx) frames.push(txxx);
      }
      off = data + frameSize;
    }
    tag = end + (flags & 0x10 ? 10 : 0); // §3.4 footer
  }
  return frames;
}

// TXXX (§4.2.6): encoding byte, description, terminator, value. Encodings 0 (ISO-8859-1) and
// 3 (UTF-8) have a one-byte terminator; UTF-16 (1, 2) is not used by the contract and skipped.
function decodeTxxx(frame) {
  const encoding = frame[0];
  if (encoding !== 0 && encoding !== 3) return null;
  const body = frame.subarray(1);
  const nul = body.indexOf(0);
  if (nul < 0) return null;
  const decoder = encoding === 3 ? utf8 : latin1;
  let value = body.subarray(nul + 1);
  if (value.length && value[value.length - 1] === 0) value = value.subarray(0, -1);
  try {
    return { description: decoder.decode(body.subarray(0, nul)), value: decoder.decode(value) };
  } catch {
    throw new CueError('TXXX frame is not valid UTF-8');
  }
}

/**
 * The cue JSON texts in an ID3 sample: values of TXXX frames described "com.dropline.cue".
 * @param {Uint8Array} bytes
 * @returns {string[]}
 */
export function cueTextsFromId3(bytes) {
  return readTxxxFrames(bytes)
    .filter((f) => f.description === TXXX_DESCRIPTION)
    .map((f) => f.value);
}

// ---------------------------------------------------------------------------------------------
// base64url (RFC 4648 §5), written without padding by the gateway; padding is tolerated.

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {CueError}
 */
export function decodeBase64url(text) {
  if (typeof text !== 'string' || !B64URL.test(text)) throw new CueError('not base64url');
  const bare = text.replace(/=+$/, '');
  if (bare.length % 4 === 1) throw new CueError('base64url length is impossible');
  const b64 = bare.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (bare.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The cue JSON: {"id","kind","start","duration_ms"?,"payload"?}

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/**
 * Parses and validates one cue JSON text.
 * @param {string} text
 * @returns {Cue}
 * @throws {CueError}
 */
export function parseCue(text) {
  if (typeof text !== 'string') throw new CueError('cue JSON is not a string');
  if (text.length > MAX_CUE_JSON_BYTES) throw new CueError(`cue JSON of ${text.length} chars is too large`);
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CueError(`cue is not JSON: ${e.message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CueError('cue is not an object');
  const { id, kind, start } = v;
  const durationMs = v.duration_ms ?? null;
  if (typeof id !== 'string' || !CUE_ID.test(id)) throw new CueError(`bad cue id ${JSON.stringify(id)}`);
  if (!KINDS.has(kind)) throw new CueError(`cue ${id}: unknown kind ${JSON.stringify(kind)}`);
  const startMs = typeof start === 'string' && RFC3339_UTC.test(start) ? Date.parse(start) : NaN;
  if (!Number.isFinite(startMs)) throw new CueError(`cue ${id}: bad start ${JSON.stringify(start)}`);
  if (durationMs !== null && !(Number.isSafeInteger(durationMs) && durationMs >= 0)) {
    throw new CueError(`cue ${id}: bad duration_ms ${JSON.stringify(durationMs)}`);
  }
  return { id, kind, payload: v.payload ?? null, start, startMs, durationMs };
}

/**
 * A cue from an hls.js DateRange (or anything with the same `attr` and `startDate`), or null when the
 * DATERANGE is not one of ours.
 * @param {{ attr: Record<string, string>, startDate?: Date }} dateRange
 * @returns {Cue | null}
 * @throws {CueError} when it claims to be ours but is malformed
 */
export function cueFromDateRange(dateRange) {
  const attr = dateRange?.attr;
  const cls = attr?.CLASS;
  if (typeof cls !== 'string' || !cls.startsWith(DATERANGE_CLASS_PREFIX)) return null;
  const payload = attr['X-PAYLOAD'];
  if (payload === undefined) throw new CueError(`DATERANGE ${attr.ID}: no X-PAYLOAD`);
  let text;
  try {
    text = utf8.decode(decodeBase64url(payload));
  } catch (e) {
    throw e instanceof CueError ? e : new CueError(`DATERANGE ${attr.ID}: X-PAYLOAD is not UTF-8`);
  }
  const cue = parseCue(text);
  // ID and CLASS must agree with the payload they carry (contract §2).
  if (cue.id !== attr.ID) throw new CueError(`DATERANGE ID ${attr.ID} carries cue ${cue.id}`);
  if (cls !== DATERANGE_CLASS_PREFIX + cue.kind) {
    throw new CueError(`DATERANGE ${cue.id}: CLASS ${cls} carries ${cue.kind}`);
  }
  // START-DATE is the authority for where the tag sits on the timeline.
  const startMs = Date.parse(attr['START-DATE']);
  if (!Number.isFinite(startMs)) throw new CueError(`DATERANGE ${cue.id}: bad START-DATE`);
  return { ...cue, startMs };
}

/**
 * Where a segment's EXT-X-PROGRAM-DATE-TIME sits on the media timeline: the start PTS of its first
 * sample, known once hls.js has parsed the segment (or its first part).
 * @typedef {{ programDateTime: number, start: number }} TimeAnchor
 */

// How far past a parsed segment its anchor is used: a live timeline runs at 1×, but a
// discontinuity further on would go unseen; the playlist mapping takes over beyond.
const ANCHOR_REACH_MS = 30_000;

/**
 * Maps a program date-time onto the media timeline, from the segment it falls in: through the
 * latest parsed segment that starts at or before it (within 30 s) — exact, both sides come from
 * the media — else through the playlist: the last fragment whose EXT-X-PROGRAM-DATE-TIME is at or
 * before it (else the first dated fragment), `start + Δ`, where hls.js's `start` of a fragment it
 * has not parsed is an estimate.
 * @param {{ fragments?: { start: number, programDateTime: number | null }[] }} details
 * @param {number} dateMs
 * @param {TimeAnchor[]} [anchors] parsed segments, oldest first
 * @returns {number} media seconds, NaN when the playlist has no PROGRAM-DATE-TIME
 */
export function mediaTimeOfDate(details, dateMs, anchors = []) {
  let from = null;
  for (const a of anchors) if (a.programDateTime <= dateMs) from = a;
  if (from && dateMs - from.programDateTime <= ANCHOR_REACH_MS) {
    return from.start + (dateMs - from.programDateTime) / 1000;
  }
  from = null;
  for (const frag of details?.fragments ?? []) {
    if (!Number.isFinite(frag?.programDateTime) || !Number.isFinite(frag?.start)) continue;
    if (from === null || frag.programDateTime <= dateMs) from = frag;
    if (frag.programDateTime > dateMs) break;
  }
  return from ? from.start + (dateMs - from.programDateTime) / 1000 : NaN;
}

/**
 * The anchor a `Hls.Events.LEVEL_PTS_UPDATED` gives, or null: for a whole fragment, or for the first
 * part of one (hls.js keeps a part's own start PTS on `part.elementaryStreams[type]`). A later part
 * gives none: its place in the segment would come from the playlist's EXT-X-PART DURATIONs, not
 * from the media.
 * @param {{ frag?: any, part?: any, type?: string, start?: number }} data
 * @returns {TimeAnchor | null}
 */
export function anchorOfParsedChunk(data) {
  const { frag, part, type, start } = data ?? {};
  if (!Number.isFinite(frag?.programDateTime)) return null;
  if (part && part.index !== 0) return null;
  const mediaStart = part ? part.elementaryStreams?.[type]?.startPTS : start;
  if (!Number.isFinite(mediaStart)) return null;
  return { programDateTime: frag.programDateTime, start: mediaStart };
}

// ---------------------------------------------------------------------------------------------
// Schedule: pure state — cues offered with a media time, polled with the playback position.

/**
 * @typedef {object} Due
 * @property {Cue} cue
 * @property {number} mediaTime
 * @property {Carriage} carriage
 * @property {boolean} late
 */

/**
 * Holds cues until their media time, fires each id once, never fires a cancelled or expired cue.
 *
 * `offer` may be called many times per id (every playlist reload, every rendition's emsg): the first
 * carriage wins, but an emsg time (carried in the media itself) replaces a mapped DATERANGE time
 * while the cue is pending. `poll(position, ahead)` returns the cues whose time is at most
 * `position + ahead`, in media-time order.
 */
export class CueSchedule {
  /**
   * @param {{ lateToleranceS?: number, maxPending?: number, rememberIds?: number }} [opts]
   *   lateToleranceS: a cue fired more than this after its time is flagged late (default 0.1 s);
   *   maxPending: cues waiting at most (default 1000); rememberIds: fired/cancelled ids remembered
   *   for deduplication (default 50000; ids older than the playlist window never come back).
   */
  constructor({ lateToleranceS = 0.1, maxPending = 1000, rememberIds = 50_000 } = {}) {
    this.lateToleranceS = lateToleranceS;
    this.maxPending = maxPending;
    this.rememberIds = rememberIds;
    /** @type {Map<string, { cue: Cue, mediaTime: number, carriage: Carriage, precise: boolean }>} */
    this.pending = new Map();
    /** @type {Map<string, 'fired' | 'cancelled' | 'expired'>} */
    this.done = new Map();
  }

  /**
   * @param {Cue} cue
   * @param {number} mediaTime
   * @param {Carriage} carriage
   * @returns {'added' | 'updated' | 'unchanged' | 'done' | 'rejected'}
   */
  offer(cue, mediaTime, carriage) {
    if (this.done.has(cue.id)) return 'done';
    if (!Number.isFinite(mediaTime)) return 'rejected';
    const precise = carriage === 'emsg';
    const known = this.pending.get(cue.id);
    if (known) {
      if (known.precise && !precise) return 'unchanged';
      if (known.mediaTime === mediaTime) return 'unchanged';
      known.mediaTime = mediaTime;
      known.precise = precise;
      return 'updated';
    }
    if (this.pending.size >= this.maxPending) return 'rejected';
    this.pending.set(cue.id, { cue, mediaTime, carriage, precise });
    return 'added';
  }

  /** Whether `id` waits to fire and its time came only from a playlist. */
  pendingFromPlaylistOnly(id) {
    const p = this.pending.get(id);
    return !!p && !p.precise;
  }

  /** Media time `id` is scheduled for, or undefined. */
  timeOf(id) {
    return this.pending.get(id)?.mediaTime;
  }

  /** Cancels a pending cue: it never fires, even if a carriage offers it again. */
  cancel(id) {
    if (this.done.has(id)) return false;
    const had = this.pending.delete(id);
    this.remember(id, 'cancelled');
    return had;
  }

  /**
   * Cues due at `position`: time <= position + ahead. A cue whose known duration has passed is
   * dropped as expired instead; one fired more than lateToleranceS after its time is flagged late.
   * @param {number} position media seconds now
   * @param {number} [ahead] seconds: half a frame to fire on the frame nearest the cue time
   * @returns {Due[]}
   */
  poll(position, ahead = 0) {
    if (!Number.isFinite(position)) return [];
    const due = [];
    for (const [id, p] of this.pending) {
      if (p.mediaTime > position + ahead) continue;
      this.pending.delete(id);
      const lateBy = position - p.mediaTime;
      const span = p.cue.durationMs === null ? Infinity : p.cue.durationMs / 1000;
      if (lateBy > Math.max(span, this.lateToleranceS)) {
        this.remember(id, 'expired');
        continue;
      }
      this.remember(id, 'fired');
      const late = lateBy > this.lateToleranceS;
      due.push({ cue: p.cue, mediaTime: p.mediaTime, carriage: p.carriage, late });
    }
    return due.sort((a, b) => a.mediaTime - b.mediaTime);
  }

  /** Earliest pending media time, or Infinity. */
  nextTime() {
    let next = Infinity;
    for (const p of this.pending.values()) next = Math.min(next, p.mediaTime);
    return next;
  }

  remember(id, how) {
    this.done.set(id, how);
    if (this.done.size > this.rememberIds) this.done.delete(this.done.keys().next().value);
  }
}

/**
 * The event detail for a due cue.
 * @param {Due} due
 * @param {number} firedAt
 * @param {number} currentTime
 * @returns {CueDetail}
 */
export function cueDetail({ cue, mediaTime, carriage, late }, firedAt, currentTime) {
  const [type, state] = KINDS.get(cue.kind);
  const detail = {
    id: cue.id,
    kind: cue.kind,
    type,
    payload: cue.payload,
    start: cue.start,
    durationMs: cue.durationMs,
    mediaTime,
    firedAt,
    currentTime,
    late,
    carriage,
  };
  if (state) detail.state = state;
  return detail;
}

// ---------------------------------------------------------------------------------------------
// The browser part: hls.js events in, DOM events out.

// hls.js 1.x event names (Hls.Events.*), used when the instance does not expose its class's table.
const HLS_EVENTS = {
  FRAG_PARSING_METADATA: 'hlsFragParsingMetadata',
  LEVEL_UPDATED: 'hlsLevelUpdated',
  LEVEL_PTS_UPDATED: 'hlsLevelPtsUpdated',
  MANIFEST_LOADING: 'hlsManifestLoading',
  DESTROYING: 'hlsDestroying',
};
const DEFAULT_FRAME_S = 1 / 30;
// Steps between frame callbacks taken into account (240 fps up to three 30 fps frames), and the
// weight of each new one.
const MIN_STEP_S = 1 / 240;
const MAX_STEP_S = 0.1;
const STEP_SMOOTHING = 0.25;
// Without requestVideoFrameCallback a timer wakes up this much before the cue time and polls again.
const TIMER_EARLY_S = 0.004;
// No frame presented for this long (audio only, hidden tab, stall): fall back to currentTime.
const FRAMES_STALE_MS = 500;
const MAX_LOGGED_BAD_IDS = 1000;
// Parsed segments remembered as PROGRAM-DATE-TIME anchors (a minute of 2 s segments).
const MAX_ANCHORS = 32;

/**
 * The object `attachOverlay` returns: an EventTarget dispatching CustomEvent<CueDetail> of type
 * "offer", "stage", "card", "soldout", "custom", and "cue" for every one of them.
 */
export class DroplineOverlay extends EventTarget {
  /** @type {CueDetail[]} every cue fired so far, oldest first (at most opts.historyLimit) */
  fired = [];

  /**
   * @param {any} hls       an Hls instance (hls.js 1.x)
   * @param {HTMLVideoElement} video
   * @param {OverlayOptions} [opts]
   */
  constructor(hls, video, opts = {}) {
    super();
    this.hls = hls;
    this.video = video;
    this.schedule = opts.schedule ?? new CueSchedule(opts);
    // A schedule shared with an earlier attachment keeps the ids it fired; its pending times were on
    // the previous media element's timeline, and the carriages will deliver those cues again.
    this.schedule.pending.clear();
    this.historyLimit = opts.historyLimit ?? 500;
    this.log = opts.log ?? ((msg) => console.debug(`dropline-overlay: ${msg}`));
    this.now = opts.now ?? (() => performance.now());
    this.useFrames =
      (opts.useVideoFrameCallback ?? true) && typeof video.requestVideoFrameCallback === 'function';
    this.stepS = DEFAULT_FRAME_S; // media time between frame callbacks, smoothed
    this.lastFrame = null; // { mediaTime, at }
    this.frameHandle = null;
    this.timer = null;
    this.detached = false;
    /** @type {TimeAnchor[]} the last parsed segments (video, else audio), oldest first */
    this.anchors = [];
    this.anchorsFromVideo = false;
    // Every reload repeats a malformed DATERANGE: log each ID once.
    this.badDateRanges = new Set();

    /** @type {Set<Carriage>} the carriages read */
    this.carriages = new Set(opts.carriages ?? ['emsg', 'daterange']);
    for (const c of this.carriages) if (c !== 'emsg' && c !== 'daterange') throw new TypeError(`unknown carriage ${c}`);

    const E = { ...HLS_EVENTS, ...(hls?.constructor?.Events ?? {}) };
    /** @type {[string, Function][]} */
    this.hlsHandlers = [
      [E.FRAG_PARSING_METADATA, (_e, data) => this.onMetadata(data)],
      [E.LEVEL_UPDATED, (_e, data) => this.onPlaylist(data?.details, true)],
      [E.LEVEL_PTS_UPDATED, (_e, data) => this.onParsed(data)],
      [E.MANIFEST_LOADING, () => this.onNewSource()],
      [E.DESTROYING, () => this.detach()],
    ].map(([name, fn]) => [name, this.guard(fn)]);
    for (const [name, fn] of this.hlsHandlers) hls.on(name, fn);

    this.videoHandlers = ['timeupdate', 'seeked', 'playing', 'ratechange', 'pause'].map((name) => [
      name,
      this.guard(() => this.tick(null)),
    ]);
    for (const [name, fn] of this.videoHandlers) video.addEventListener(name, fn);
  }

  /** Stops listening to hls.js and the video; pending cues never fire. */
  detach() {
    if (this.detached) return;
    this.detached = true;
    for (const [name, fn] of this.hlsHandlers) this.hls.off(name, fn);
    for (const [name, fn] of this.videoHandlers) this.video.removeEventListener(name, fn);
    if (this.frameHandle !== null) this.video.cancelVideoFrameCallback(this.frameHandle);
    clearTimeout(this.timer);
    this.frameHandle = this.timer = null;
  }

  /** Cancels a cue by id: it will not fire (returns whether it was pending). */
  cancel(id) {
    return this.schedule.cancel(id);
  }

  /** Cues waiting for their time: [{ id, kind, mediaTime, carriage }]. */
  pending() {
    return [...this.schedule.pending.values()].map((p) => ({
      id: p.cue.id,
      kind: p.cue.kind,
      mediaTime: p.mediaTime,
      carriage: p.carriage,
    }));
  }

  // Handlers run inside hls.js's event loop: nothing may escape into it.
  guard(fn) {
    return (...args) => {
      try {
        fn(...args);
      } catch (e) {
        this.log(`ignored: ${e && e.message ? e.message : e}`);
      }
    };
  }

  /** Hls.Events.FRAG_PARSING_METADATA: { frag, samples: [{ pts, data, type }] }. */
  onMetadata(data) {
    if (!this.carriages.has('emsg')) return;
    for (const sample of data?.samples ?? []) {
      if (sample?.type !== undefined && !ID3_SAMPLE_TYPES.has(sample.type)) continue;
      let texts;
      try {
        texts = cueTextsFromId3(sample.data);
      } catch (e) {
        this.log(`ID3 sample at ${sample.pts}: ${e.message}`);
        continue;
      }
      for (const text of texts) {
        try {
          const cue = parseCue(text);
          // hls.js gives pts on the media timeline; without it, map the start through the
          // fragment's PROGRAM-DATE-TIME.
          const frag = data.frag;
          const t = Number.isFinite(sample.pts)
            ? sample.pts
            : Number.isFinite(frag?.programDateTime)
              ? frag.start + (cue.startMs - frag.programDateTime) / 1000
              : NaN;
          this.offer(cue, t, 'emsg');
        } catch (e) {
          this.log(`emsg cue: ${e.message}`);
        }
      }
    }
  }

  /** MANIFEST_LOADING (hls.loadSource): times and anchors of the previous source mean nothing now. */
  onNewSource() {
    this.schedule.pending.clear();
    this.anchors = [];
    this.anchorsFromVideo = false;
  }

  /** LEVEL_PTS_UPDATED: a chunk was parsed; its PTS anchors PROGRAM-DATE-TIME on the media timeline. */
  onParsed(data) {
    const anchor = anchorOfParsedChunk(data);
    const video = data?.type !== 'audio';
    if (anchor && (video || !this.anchorsFromVideo)) {
      if (video && !this.anchorsFromVideo) this.anchors = [];
      this.anchorsFromVideo = video;
      // Ordered by date; a segment parsed again (level switch) replaces its entry.
      this.anchors = this.anchors.filter((a) => a.programDateTime !== anchor.programDateTime);
      this.anchors.push(anchor);
      this.anchors.sort((x, y) => x.programDateTime - y.programDateTime);
      if (this.anchors.length > MAX_ANCHORS) this.anchors.shift();
    }
    this.onPlaylist(data?.details, false);
  }

  /**
   * LEVEL_UPDATED / LEVEL_PTS_UPDATED: every DATERANGE of ours, mapped (again: fragment starts move
   * once their PTS is known) onto the media timeline.
   */
  onPlaylist(details, reloaded) {
    if (!this.carriages.has('daterange') || !details?.dateRanges) return;
    const seen = new Set();
    for (const dateRange of Object.values(details.dateRanges)) {
      try {
        const cue = cueFromDateRange(dateRange);
        if (!cue) continue;
        seen.add(cue.id);
        this.offer(cue, mediaTimeOfDate(details, cue.startMs, this.anchors), 'daterange');
      } catch (e) {
        const id = String(dateRange?.attr?.ID);
        if (this.badDateRanges.has(id)) continue;
        if (this.badDateRanges.size >= MAX_LOGGED_BAD_IDS) this.badDateRanges.clear();
        this.badDateRanges.add(id);
        this.log(`DATERANGE ${id}: ${e.message}`);
      }
    }
    // A tag whose start is still inside the window does not leave it by sliding: it was withdrawn.
    // (Only playlist-only cues: one seen in the media has aired.)
    if (!reloaded || details.deltaUpdateFailed) return;
    const windowStart = details.fragments?.[0]?.start ?? Infinity;
    for (const p of this.pending()) {
      if (seen.has(p.id) || p.mediaTime < windowStart) continue;
      if (!this.schedule.pendingFromPlaylistOnly(p.id)) continue;
      this.schedule.cancel(p.id);
      this.log(`cue ${p.id} left the playlist before airing: cancelled`);
    }
  }

  offer(cue, mediaTime, carriage) {
    const result = this.schedule.offer(cue, mediaTime, carriage);
    if (result === 'rejected') this.log(`cue ${cue.id} not scheduled (time ${mediaTime})`);
    if (result === 'added' || result === 'updated') this.tick(null);
  }

  /**
   * Fires what is due and arranges the next wake-up. `frame` is requestVideoFrameCallback's
   * metadata when called for a presented frame.
   */
  tick(frame) {
    if (this.detached) return;
    const video = this.video;
    let position;
    let ahead;
    if (frame) {
      // Fire on the callback nearest the cue time: the next one comes about one step later.
      this.learnStep(frame);
      position = frame.mediaTime;
      ahead = this.stepS / 2;
    } else if (this.useFrames && !video.paused && this.framesFlowing()) {
      // Frames are being presented: the next one decides (currentTime runs ahead of the screen).
      this.wake();
      return;
    } else {
      position = video.currentTime;
      ahead = 0;
    }
    for (const due of this.schedule.poll(position, ahead)) this.dispatch(due, position);
    this.wake();
  }

  // The media time one frame callback to the next covers: one frame period at 1×, more when
  // hls.js plays faster to catch up or the compositor drops frames. (A seek is not a step.)
  learnStep({ mediaTime }) {
    const last = this.lastFrame;
    const step = last ? mediaTime - last.mediaTime : 0;
    if (step >= MIN_STEP_S && step <= MAX_STEP_S) this.stepS += (step - this.stepS) * STEP_SMOOTHING;
    this.lastFrame = { mediaTime, at: this.now() };
  }

  framesFlowing() {
    return this.lastFrame !== null && this.now() - this.lastFrame.at < FRAMES_STALE_MS;
  }

  // Keeps one frame callback (or one timer) armed while cues wait.
  wake() {
    if (this.detached || this.schedule.pending.size === 0) return;
    const video = this.video;
    if (this.useFrames && this.frameHandle === null) {
      this.frameHandle = video.requestVideoFrameCallback(
        this.guard((_now, metadata) => {
          this.frameHandle = null;
          this.tick(metadata);
        }),
      );
    }
    // The timer covers streams without video frames (or paused video that is seeked).
    clearTimeout(this.timer);
    this.timer = null;
    if (video.paused || (this.useFrames && this.framesFlowing())) return;
    const rate = video.playbackRate > 0 ? video.playbackRate : 1;
    const waitS = (this.schedule.nextTime() - video.currentTime) / rate - TIMER_EARLY_S;
    this.timer = setTimeout(
      this.guard(() => {
        this.timer = null;
        this.tick(null);
      }),
      Math.min(Math.max(waitS * 1000, 0), 1000),
    );
  }

  dispatch(due, position) {
    const detail = cueDetail(due, position, this.video.currentTime);
    this.fired.push(detail);
    if (this.fired.length > this.historyLimit) this.fired.shift();
    for (const type of [detail.type, 'cue']) {
      try {
        this.dispatchEvent(new CustomEvent(type, { detail }));
      } catch (e) {
        this.log(`listener for ${type} threw: ${e.message}`);
      }
    }
  }
}

/**
 * Attaches to an hls.js instance and its video element. Reads cues from both carriages (emsg via
 * FRAG_PARSING_METADATA, EXT-X-DATERANGE via LevelDetails.dateRanges) and dispatches each cue once,
 * at its presentation time, as a CustomEvent<CueDetail>.
 *
 * @param {any} hls an Hls instance (hls.js 1.x)
 * @param {HTMLVideoElement} video the element hls.js plays into
 * @param {OverlayOptions} [opts]
 * @returns {DroplineOverlay}
 */
export function attachOverlay(hls, video, opts = {}) {
  if (!hls || typeof hls.on !== 'function') throw new TypeError('attachOverlay: hls must be an Hls instance');
  if (!video || typeof video.addEventListener !== 'function') {
    throw new TypeError('attachOverlay: video must be an HTMLVideoElement');
  }
  return new DroplineOverlay(hls, video, opts);
}
