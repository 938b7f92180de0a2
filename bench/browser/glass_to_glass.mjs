// bench/glass_to_glass: drives headless Chromium (playwright-core, Debian's /usr/bin/chromium) with
// one page per server and reads, every 100 ms, the frame number burnt into the picture.
// Started by bench/glass_to_glass.py: node glass_to_glass.mjs <config.json>; writes <config.out>.
//
// config: { pages: [{name, url}], seconds, tmp, out, bits, block, hlsConfig }
// Each sample: { t: Date.now(), n: decoded frame number or null, lat: hls.latency,
//                pdt: hls.playingDate (ms) or null, g2g: window.sfPlayer.glassToGlass or null,
//                vis: document.visibilityState }
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const hardStop = setTimeout(() => { console.error('glass_to_glass.mjs: time budget exceeded'); process.exit(3); },
  (cfg.seconds + 90) * 1000);
hardStop.unref();

// Runs in every page before its own scripts. Draws the top strip of the video (in the video's own
// pixels, so no scaling) to a canvas and decodes `bits` blocks of `block` x `block` px: bit b is
// block b from the left, white = 1. A block whose mean is neither clearly dark nor clearly light
// makes the sample unreadable (a frame mid-transition or damaged by compression).
const sampler = ({ bits, block, hlsConfig }) => {
  // Optional hls.js settings merged into both pages' configuration (HLS_CONFIG in the shell
  // script, e.g. {"maxLiveSyncPlaybackRate":1.5}); empty by default: the pages as shipped.
  if (hlsConfig && Object.keys(hlsConfig).length) {
    let wrapped;
    Object.defineProperty(window, 'Hls', {
      configurable: true,
      get() { return wrapped; },
      set(Base) { wrapped = class extends Base { constructor(c) { super({ ...(c || {}), ...hlsConfig }); } }; },
    });
  }
  const st = { samples: [], unreadable: 0, noVideo: 0, hlsErrors: [] };
  window.__g2g = st;
  let ctx = null;
  let hooked = null;
  setInterval(() => {
    // hls.js errors with their details (the pages keep only type/details).
    const h = window.sfHls || window.benchHls;
    if (h && h !== hooked && window.Hls) {
      hooked = h;
      h.on(window.Hls.Events.ERROR, (_, e) => {
        if (st.hlsErrors.length >= 40) return;
        st.hlsErrors.push({ t: Date.now(), details: e.details, fatal: e.fatal, reason: e.reason || null,
          error: e.error ? String(e.error.message || e.error) : null,
          frag: e.frag ? `${e.frag.type} sn=${e.frag.sn} ${e.frag.relurl || ''}` : null,
          part: e.part ? e.part.relurl || null : null,
          buffer: e.buffer != null ? e.buffer : null });
      });
    }
    const v = document.querySelector('video');
    if (!v || v.readyState < 2 || !v.videoWidth) { st.noVideo++; return; }
    if (!ctx) {
      const c = document.createElement('canvas');
      c.width = bits * block;
      c.height = block;
      ctx = c.getContext('2d', { willReadFrequently: true });
    }
    const t = Date.now();
    ctx.drawImage(v, 0, 0, bits * block, block, 0, 0, bits * block, block);
    const d = ctx.getImageData(0, 0, bits * block, block).data;
    const lo = Math.floor(block * 0.3), hi = Math.ceil(block * 0.7);
    let n = 0, ok = true;
    for (let b = 0; b < bits; b++) {
      let sum = 0, cnt = 0;
      for (let y = lo; y < hi; y++) {
        for (let x = b * block + lo; x < b * block + hi; x++) {
          const i = (y * bits * block + x) * 4;
          sum += (d[i] + d[i + 1] + d[i + 2]) / 3;
          cnt++;
        }
      }
      const avg = sum / cnt;
      if (avg > 170) n += 2 ** b;
      else if (avg >= 85) ok = false;
    }
    if (!ok) st.unreadable++;
    const hls = window.sfHls || window.benchHls;
    const sp = window.sfPlayer;
    st.samples.push({
      t, n: ok ? n : null, paused: v.paused,
      lat: hls && Number.isFinite(hls.latency) ? hls.latency : null,
      pdt: hls && hls.playingDate ? hls.playingDate.getTime() : null,
      g2g: sp && sp.glassToGlass != null ? sp.glassToGlass : null,
      vis: document.visibilityState,
    });
  }, 100);
};

const dir = mkdtempSync(join(cfg.tmp, 'chromium-'));
const context = await chromium.launchPersistentContext(dir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 800, height: 600 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
    // Two players side by side in one browser: neither may be throttled as a background page.
    '--disable-background-timer-throttling', '--disable-backgrounding-occluded-windows',
    '--disable-renderer-backgrounding'],
});
const result = { pages: {}, started: Date.now() };
try {
  await context.addInitScript(sampler, { bits: cfg.bits, block: cfg.block, hlsConfig: cfg.hlsConfig || {} });
  const pages = [];
  for (const p of cfg.pages) {
    const page = await context.newPage();
    const log = [];
    page.on('console', (m) => { if (log.length < 50) log.push(`${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => { if (log.length < 50) log.push(`pageerror: ${e.message}`); });
    await page.goto(p.url, { waitUntil: 'load', timeout: 20000 });
    pages.push({ ...p, page, log, loaded: Date.now() });
  }
  console.error(`glass_to_glass.mjs: ${pages.length} pages loaded, sampling for ${cfg.seconds} s`);
  await new Promise((r) => setTimeout(r, cfg.seconds * 1000));
  for (const p of pages) {
    const data = await p.page.evaluate(() => ({
      g2g: window.__g2g,
      player: window.sfPlayer ? { stalls: window.sfPlayer.stalls, errors: window.sfPlayer.errors.slice(0, 20),
        fatalErrors: window.sfPlayer.fatalErrors } : window.benchPlayer,
      hls: (() => { const h = window.sfHls || window.benchHls; return h ? { targetLatency: h.targetLatency,
        maxLiveSyncPlaybackRate: h.config.maxLiveSyncPlaybackRate,
        version: window.Hls && window.Hls.version, lowLatencyMode: h.config.lowLatencyMode } : null; })(),
      quality: (() => { const v = document.querySelector('video'); const q = v && v.getVideoPlaybackQuality
        ? v.getVideoPlaybackQuality() : null; return q ? { total: q.totalVideoFrames, dropped: q.droppedVideoFrames } : null; })(),
    }));
    result.pages[p.name] = { url: p.url, loaded: p.loaded, console: p.log, ...data };
  }
} finally {
  await context.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
writeFileSync(cfg.out, JSON.stringify(result));
process.exit(0);
