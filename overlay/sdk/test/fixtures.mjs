// Test fixtures built from the cue carriage contract: cue JSON, the ID3v2.4 tag an emsg carries,
// the base64url X-PAYLOAD of a DATERANGE, and fakes for hls.js and the video element.

const utf8 = new TextEncoder();

/** A 28-bit syncsafe integer: four bytes of 7 bits each, most significant first. */
export function syncsafe(n) {
  return [(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f];
}

/** An ID3v2.4 frame: 4-char id, syncsafe size, flags 0, data. */
export function id3Frame(id, data, { flags = [0, 0] } = {}) {
  return Uint8Array.from([...utf8.encode(id), ...syncsafe(data.length), ...flags, ...data]);
}

/** TXXX with text encoding 3 (UTF-8): description, NUL, value. */
export function txxx(description, value) {
  return id3Frame('TXXX', [3, ...utf8.encode(description), 0, ...utf8.encode(value)]);
}

/** An ID3v2.4 tag: "ID3" 04 00, flags, syncsafe size of the frames. */
export function id3Tag(frames, { flags = 0, major = 4 } = {}) {
  const body = frames.flatMap((f) => [...f]);
  return Uint8Array.from([0x49, 0x44, 0x33, major, 0, flags, ...syncsafe(body.length), ...body]);
}

export function cueJson({ id = 'c1', kind = 'offer-open', start = '2026-11-26T10:03:17.123Z', durationMs, payload } = {}) {
  const cue = { id, kind, start };
  if (durationMs !== undefined) cue.duration_ms = durationMs;
  if (payload !== undefined) cue.payload = payload;
  return JSON.stringify(cue);
}

/** The emsg's message_data for a cue, as the contract writes it. */
export function cueId3(json) {
  return id3Tag([txxx('com.dropline.cue', json)]);
}

export function base64url(text) {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** What hls.js 1.7 puts in LevelDetails.dateRanges[id] (the fields the SDK reads). */
export function dateRange(json, { cls, id, startDate } = {}) {
  const cue = JSON.parse(json);
  const attr = {
    ID: id ?? cue.id,
    CLASS: cls ?? `com.dropline.${cue.kind}`,
    'START-DATE': startDate ?? cue.start,
    'X-PAYLOAD': base64url(json),
  };
  if (cue.duration_ms !== undefined) attr.DURATION = String(cue.duration_ms / 1000);
  return { id: attr.ID, class: attr.CLASS, attr, startDate: new Date(attr['START-DATE']) };
}

/** Level details with one 2 s fragment per PROGRAM-DATE-TIME given, starting at media time `start`. */
export function details(dateRanges, { start = 100, pdt = '2026-11-26T10:03:00.000Z', count = 10, extra = {} } = {}) {
  const t0 = Date.parse(pdt);
  const fragments = Array.from({ length: count }, (_, i) => ({ start: start + 2 * i, programDateTime: t0 + 2000 * i }));
  return { fragments, dateRanges: Object.fromEntries(dateRanges.map((d) => [d.id, d])), ...extra };
}

/** Minimal hls.js event emitter: on/off/trigger with hls.js's (event, data) listener signature. */
export class FakeHls {
  constructor() {
    this.listeners = new Map();
  }
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
  }
  off(name, fn) {
    this.listeners.get(name)?.delete(fn);
  }
  trigger(name, data) {
    for (const fn of this.listeners.get(name) ?? []) fn(name, data);
  }
  count() {
    return [...this.listeners.values()].reduce((n, s) => n + s.size, 0);
  }
}

/**
 * A video element on a virtual clock. With `frames`, it offers requestVideoFrameCallback and
 * presents a frame every `frameS` seconds of media time when `advance` moves past it.
 */
export class FakeVideo extends EventTarget {
  constructor({ frames = true, frameS = 1 / 30, currentTime = 0 } = {}) {
    super();
    this.currentTime = currentTime;
    this.paused = false;
    this.playbackRate = 1;
    this.frameS = frameS;
    this.presentedFrames = 0;
    this.wallMs = 0;
    this.callbacks = new Map();
    this.nextHandle = 1;
    if (frames) {
      this.requestVideoFrameCallback = (fn) => {
        const h = this.nextHandle++;
        this.callbacks.set(h, fn);
        return h;
      };
      this.cancelVideoFrameCallback = (h) => this.callbacks.delete(h);
    }
  }
  /** Presents the next frame (media time = currentTime) to every armed callback. */
  present() {
    this.presentedFrames += 1;
    const cbs = [...this.callbacks.values()];
    this.callbacks.clear();
    for (const fn of cbs) fn(this.wallMs, { mediaTime: this.currentTime, presentedFrames: this.presentedFrames });
  }
  /** Plays `seconds` of media, one frame at a time. */
  play(seconds) {
    const frames = Math.round(seconds / this.frameS);
    for (let i = 0; i < frames; i += 1) {
      this.currentTime = Math.round((this.currentTime + this.frameS) * 1e6) / 1e6;
      this.wallMs += this.frameS * 1000;
      this.present();
    }
  }
}
