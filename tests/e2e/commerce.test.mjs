// A live-commerce show end to end in Chromium: the gateway runs a drop (one product, 100 in stock,
// staged reveals) fed by Shopify-style inventory webhooks, and a viewer plays the demo page with
// hls.js and the player SDK.
//   - A signed inventory update reveals a stage: its cue fires once in the page (the badge shows it,
//     never the count). The same delivery again, a forged one and an older state change nothing.
//   - A drop offer is scheduled (wall clock, 16 s ahead), then the gateway is killed (SIGKILL right
//     after the 201) and a new one starts on the same ports and store; the encoder reconnects. The
//     page plays on by itself, and the offer fires once, on its frame, with the countdown and a token
//     that verifies only once it is due. A replay of the first delivery is still a duplicate.
//   - An update to zero sells out: the automatic sold-out cue fires once.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cleanup,
  LiveStream,
  launchBrowser,
  makeTempDir,
  readStats,
  repoRoot,
  shutdownAll,
  waitForPlaying,
} from './helpers.mjs';

const STREAM = 'shop';
const DROP = 'drop-1';
const MAX_ERROR_S = 0.04; // the issue's goal: within one frame, ≤ 40 ms
const HOLD_BACK_MS = 1_500; // offer token not-before = cue PDT + this
const SECRETS = {
  [`DROPLINE_STREAM_${STREAM.toUpperCase()}_API_TOKEN`]: 'e2e-shop-token-0123456789',
  DROPLINE_WEBHOOK_SHOPIFY_SECRET: 'e2e-shopify-secret',
  DROPLINE_OFFER_KEY: 'e2e-offer-signing-key-0123456789abcdef',
};
const INVENTORY = JSON.parse(
  readFileSync(path.join(repoRoot, 'fixtures', 'webhooks', 'shopify', 'inventory_levels_update.json'), 'utf-8'),
);

after(shutdownAll);

/** A Shopify `inventory_levels/update` delivery of the fixture with `available` at `updatedAt`. */
function inventoryDelivery(id, available, updatedAt, secret = SECRETS.DROPLINE_WEBHOOK_SHOPIFY_SECRET) {
  const body = JSON.stringify({ ...INVENTORY, available, updated_at: updatedAt });
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-shopify-topic': 'inventory_levels/update',
      'x-shopify-webhook-id': id,
      'x-shopify-hmac-sha256': createHmac('sha256', secret).update(body).digest('base64'),
    },
  };
}

test('a drop show: webhooks reveal stages, an offer survives a gateway restart, sold out', { timeout: 240_000 }, async () => {
  const cleanup = new Cleanup();
  const live = new LiveStream(STREAM);
  const { check } = live;
  let browser;
  try {
    const dir = makeTempDir('commerce');
    const config = path.join(dir, 'dropline.toml');
    writeFileSync(
      config,
      `[storage]
data_dir = ${JSON.stringify(path.join(dir, 'data'))}

[offers]
hold_back_ms = ${HOLD_BACK_MS}

[[streams.${STREAM}.drops]]
id = "${DROP}"
source = "inventory-levels"
products = [{ product_id = "cap", inventory_item_id = "${INVENTORY.inventory_item_id}", stock = 100 }]
stages = [{ label = "plenty" }, { label = "under 50", at_most = 49 }, { label = "last 10", at_most = 10 }]
`,
    );
    const start = (listen) => live.start(cleanup, { extraArgs: ['--config', config], env: SECRETS, listen });
    await start();
    const { httpUrl, addrs } = live.gateway;
    const listen = { srt: addrs.srt, http: addrs.http };

    const call = async (method, url, { body, headers = {} } = {}) => {
      const res = await fetch(`${httpUrl}${url}`, { method, headers, body });
      return { status: res.status, json: await res.json().catch(() => null) };
    };
    const auth = { authorization: `Bearer ${SECRETS[`DROPLINE_STREAM_${STREAM.toUpperCase()}_API_TOKEN`]}` };
    const cueList = async () => {
      const { status, json } = await call('GET', `/api/v1/streams/${STREAM}/cues`, { headers: auth });
      assert.equal(status, 200, JSON.stringify(json));
      return json.cues.map((c) => c.id);
    };
    const hook = (delivery) => call('POST', '/api/v1/webhooks/shopify', delivery);

    browser = await launchBrowser();
    cleanup.add(() => browser.close());
    const { page } = browser;
    await page.goto(`${httpUrl}/?stream=${STREAM}`, { waitUntil: 'load', timeout: 30_000 });
    await waitForPlaying(page, { timeoutMs: 30_000, check });
    await sleep(2_000); // let hls.js settle on its target latency

    const fired = () => page.evaluate(() => window.droplineCues.slice());
    const waitFired = async (id, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        check();
        const c = (await fired()).find((x) => x.id === id);
        if (c) return c;
        await sleep(250);
      }
      throw new Error(`${id} did not fire within ${timeoutMs} ms; fired: ${JSON.stringify(await fired())}`);
    };
    const onTime = (c) => {
      const error = c.firedAt - c.mediaTime;
      console.log(
        `commerce e2e: ${c.id} (${c.kind}) via ${c.carriage}, fired on frame ${c.firedAt.toFixed(3)} s ` +
          `for ${c.mediaTime.toFixed(3)} s (${(error * 1000).toFixed(1)} ms)${c.late ? ' LATE' : ''}`,
      );
      assert.ok(!c.late && Math.abs(error) <= MAX_ERROR_S, `${c.id} off its frame: ${JSON.stringify(c)}`);
    };
    const badge = () => page.evaluate(() => document.querySelector('#stage-badge')?.textContent ?? null);

    // 37 available: "under 50" is revealed.
    const first = inventoryDelivery('inv-1', 37, '2026-11-26T05:03:42-05:00');
    let r = await hook(first);
    assert.deepEqual([r.status, r.json?.outcome], [200, 'applied'], JSON.stringify(r.json));
    const stage = await waitFired(`${DROP}.stage-1`);
    onTime(stage);
    assert.deepEqual(stage.payload, { drop: DROP, stage: 'under 50', index: 1 }, 'the stage, never the count');
    assert.equal(await badge(), 'under 50');
    const afterStage = await cueList();

    // Nothing changes: the same delivery again, a forged one, an older state.
    r = await hook(first);
    assert.deepEqual([r.status, r.json?.outcome], [200, 'duplicate'], JSON.stringify(r.json));
    r = await hook(inventoryDelivery('inv-forged', 0, '2026-11-26T05:10:00-05:00', 'not-the-secret'));
    assert.equal(r.status, 401, JSON.stringify(r.json));
    r = await hook(inventoryDelivery('inv-old', 5, '2026-11-26T05:00:00-05:00'));
    assert.deepEqual([r.status, r.json?.outcome], [200, 'stale'], JSON.stringify(r.json));
    assert.deepEqual(await cueList(), afterStage, 'no cue from a replayed, forged or stale webhook');

    // A drop offer 16 s ahead, then a crash before it airs.
    const offerAt = new Date(Date.now() + 16_000).toISOString();
    const offer = {
      id: 'offer-1',
      kind: 'offer-open',
      payload: { offer_id: 'cap-drop', product_ids: ['cap'], title: 'Drop cap', price: '25 EUR' },
      anchor: { type: 'wall-clock', at: offerAt },
      duration_ms: 30_000,
    };
    r = await call('POST', `/api/v1/streams/${STREAM}/cues`, {
      body: JSON.stringify(offer),
      headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': 'offer-1-key' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    await live.gateway.kill();
    await live.publisher.stop();
    const restartedAt = Date.now();
    await start(listen);
    console.log(`commerce e2e: gateway killed and back, stream live again after ${Date.now() - restartedAt} ms`);

    const opened = await waitFired('offer-1', 45_000);
    onTime(opened);
    assert.equal(opened.state, 'open');
    const shown = await page.evaluate(() => ({
      offer: !document.querySelector('#offer')?.hidden,
      countdown: document.querySelector('#offer-countdown')?.textContent ?? '',
    }));
    assert.ok(shown.offer && /^\d+:\d\d$/.test(shown.countdown), `offer on screen: ${JSON.stringify(shown)}`);
    const { json: aired } = await call('GET', `/api/v1/streams/${STREAM}/cues/offer-1`, { headers: auth });
    assert.equal(aired.aired, true, JSON.stringify(aired));
    console.log(`commerce e2e: offer-1 intended ${offerAt}, placed at ${aired.start}`);

    // The token the page got: refused before cue PDT + hold-back, valid after, forged never.
    const token = opened.payload?.token;
    assert.equal(typeof token, 'string', JSON.stringify(opened.payload));
    const verify = (t) =>
      call('POST', '/api/v1/offers/verify', {
        body: JSON.stringify({ token: t }),
        headers: { 'content-type': 'application/json' },
      });
    r = await verify(token);
    const dueMs = Date.parse(aired.start) + HOLD_BACK_MS - Date.now();
    if (dueMs > 200) assert.equal(r.status, 422, `valid ${dueMs} ms before it is due: ${JSON.stringify(r.json)}`);
    await sleep(Math.max(dueMs + 100, 0));
    r = await verify(token);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.offer_id, 'cap-drop');
    r = await verify(`${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`);
    assert.equal(r.status, 422, JSON.stringify(r.json));

    // Deliveries are remembered across the restart; a newer one to zero sells out.
    r = await hook(first);
    assert.deepEqual([r.status, r.json?.outcome], [200, 'duplicate'], JSON.stringify(r.json));
    r = await hook(inventoryDelivery('inv-2', 0, '2026-11-26T05:20:00-05:00'));
    assert.deepEqual([r.status, r.json?.outcome], [200, 'applied'], JSON.stringify(r.json));
    onTime(await waitFired(`${DROP}.sold-out`));
    await sleep(3_000); // anything firing twice has had time to
    const all = await fired();
    for (const id of [`${DROP}.stage-1`, 'offer-1', `${DROP}.sold-out`]) {
      assert.equal(all.filter((c) => c.id === id).length, 1, `${id} fires once: ${JSON.stringify(all)}`);
    }
    assert.ok(await page.evaluate(() => !document.querySelector('#soldout')?.hidden), 'sold-out banner shown');

    const stats = await readStats(page);
    const fatal = stats.errors.filter((e) => e.fatal).map((e) => `${e.details} ${e.httpStatus ?? ''}`);
    console.log(
      `commerce e2e: player recoveries ${stats.recoveries} (${fatal.join(', ')}), ` +
        `stalls ${JSON.stringify(stats.stallLog ?? [])}`,
    );
    const pageErrors = browser.console.filter((l) => l.startsWith('[pageerror]'));
    assert.deepEqual(pageErrors, []);
  } catch (e) {
    const stats = browser ? await readStats(browser.page).catch(() => null) : null;
    if (stats) console.error(`player errors: ${JSON.stringify(stats.errors)}`);
    if (browser) console.error(browser.describe());
    console.error(live.describe());
    throw e;
  } finally {
    await cleanup.run();
  }
});
