// Plays a StreamFlex stream in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core) and reports what the player saw, as one JSON line on stdout.
//
//   node play.mjs hls  <player page URL>  <seconds> <out dir>   the origin's page (hls.js, window.sfPlayer)
//   node play.mjs dash <manifest.mpd URL> <seconds> <out dir>   dash.js on a page loaded from a file:// URL,
//                                                               so every media request is cross-origin (CORS)
//
// Every second the player's state is sampled (t = Date.now(); the video element's size, time and
// frames decoded, and for dash.js the Periods it switched to); at the end a screenshot is saved in
// <out dir>. Requests the page made are summarised (count and non-2xx answers per kind).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const [mode, target, secondsArg, outDir] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!['hls', 'dash'].includes(mode) || !target || !(seconds > 0) || !outDir) {
  console.error('usage: node play.mjs hls|dash URL SECONDS OUT_DIR');
  process.exit(2);
}

const DASH_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>dash.js test page</title></head>
<body style="margin:0;background:#111;color:#eee;font-family:sans-serif">
<video id="video" muted autoplay playsinline style="width:1280px;height:720px;background:black"></video>
<pre id="stats"></pre>
<script src="${pathToFileURL(join(here, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'))}"></script>
<script>
  const video = document.getElementById('video');
  const state = { latency: null, targetLatency: 3, stalls: 0, fatalErrors: [], errors: [], playing: false,
                  framesDecoded: 0, samples: [], periodSwitches: [] };
  window.sfPlayer = state;
  const player = dashjs.MediaPlayer().create();
  // SF_DASH_DEFAULTS=1: dash.js as it comes (a standard-latency stream's player); else tuned for
  // low latency (3 s behind the live edge, catch-up on).
  if (!${JSON.stringify(!!process.env.SF_DASH_DEFAULTS)})
    player.updateSettings({ streaming: { delay: { liveDelay: 3 }, liveCatchup: { enabled: true } } });
  if (${JSON.stringify(!!process.env.SF_DASH_DEBUG)}) player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_DEBUG } });
  // Freezes: spans (polled every 50 ms) in which the video's currentTime did not advance while it
  // should have been playing (after the first 'playing', not paused), with where they began.
  state.freezes = [];
  let lastTime = null, frozenSince = null, frozenAt = null;
  setInterval(() => {
    const now = Date.now();
    if (!state.playing || video.paused || video.ended) { lastTime = video.currentTime; frozenSince = null; return; }
    if (lastTime !== null && video.currentTime === lastTime) {
      if (frozenSince === null) { frozenSince = now; frozenAt = video.currentTime; }
    } else if (frozenSince !== null) {
      if (state.freezes.length < 200) state.freezes.push({ t: frozenSince, ms: now - frozenSince, currentTime: frozenAt });
      frozenSince = null;
    }
    lastTime = video.currentTime;
  }, 50);
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
    const msg = 'error/' + (e.error && (e.error.code + ':' + e.error.message) || JSON.stringify(e).slice(0, 200));
    state.errors.push(msg);
    state.fatalErrors.push(msg);  // dash.js raises ERROR only for errors it cannot get past
  });
  player.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => state.fatalErrors.push('playback/' + (e.error && e.error.message)));
  player.on(dashjs.MediaPlayer.events.PLAYBACK_WAITING, () => { if (state.playing) state.stalls++; });
  player.on(dashjs.MediaPlayer.events.PERIOD_SWITCH_COMPLETED, (e) => {
    if (state.periodSwitches.length < 100)
      state.periodSwitches.push({ t: Date.now(), to: e.toStreamInfo ? e.toStreamInfo.id : null,
                                  currentTime: video.currentTime });
  });
  video.addEventListener('playing', () => { state.playing = true; });
  player.initialize(video, ${JSON.stringify(target)}, true);
  setInterval(() => {
    try { state.latency = player.getCurrentLiveLatency(); } catch (e) { state.latency = null; }
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    state.framesDecoded = q ? q.totalVideoFrames : 0;
    if (state.playing) state.samples.push({ t: Date.now(), latency: state.latency });
    document.getElementById('stats').textContent = JSON.stringify({ latency: state.latency, frames: state.framesDecoded, stalls: state.stalls, errors: state.errors.slice(-3) });
  }, 500);
</script></body></html>`;

const profile = mkdtempSync(join(tmpdir(), 'sf-chromium-'));
let context;
const consoleLog = [];
const result = { mode, target, samples: [], console: [], pageErrors: [], requests: {}, failed: [], screenshot: null };
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SF_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1300, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
           '--allow-file-access-from-files'],
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (['error', 'warning'].includes(m.type()) && result.console.length < 100) result.console.push(`${m.type()}: ${m.text()}`); });
  // SF_DASH_DEBUG=1: dash.js logs at debug level, every console line (with its wall clock) kept in <out dir>/console.txt.
  if (process.env.SF_DASH_DEBUG) page.on('console', (m) => { if (consoleLog.length < 200000) consoleLog.push(`${Date.now()} ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => result.pageErrors.push(String(e)));
  const kind = (url) => {
    const path = new URL(url).pathname;
    if (/\.m3u8$/.test(path)) return 'playlist';
    if (/\.mpd$/.test(path)) return 'mpd';
    if (/init\d*\.mp4$|init/.test(path)) return 'init';
    if (/\.m4s$/.test(path)) return 'media';
    return 'other';
  };
  page.on('response', (r) => {
    if (!r.url().startsWith('http')) return;
    const k = kind(r.url());
    const e = (result.requests[k] ||= { count: 0, byStatus: {}, times: [] });
    e.count++;
    e.byStatus[r.status()] = (e.byStatus[r.status()] || 0) + 1;
    if (e.times.length < 5000) e.times.push(Date.now());
    if (r.status() >= 400 && result.failed.length < 50) result.failed.push(`${r.status()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => { if (result.failed.length < 50) result.failed.push(`failed ${r.failure() && r.failure().errorText} ${r.url()}`); });

  if (mode === 'hls') {
    await page.goto(target, { waitUntil: 'load', timeout: 15000 });
  } else {
    const file = join(resolve(outDir), 'dash.html');
    writeFileSync(file, DASH_PAGE);
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load', timeout: 15000 });
  }
  result.startedAt = Date.now();
  const end = Date.now() + seconds * 1000;
  for (let i = 0; i < seconds + 5 && Date.now() < end; i++) {
    await page.waitForTimeout(Math.max(0, Math.min(1000, end - Date.now())));
    const s = await page.evaluate(() => {
      const p = window.sfPlayer || {};
      const v = document.querySelector('video');
      const b = v && v.buffered.length ? v.buffered.end(v.buffered.length - 1) : null;
      return { t: Date.now(), latency: p.latency ?? null, glassToGlass: p.glassToGlass ?? null,
               targetLatency: p.targetLatency ?? null, playing: !!p.playing, framesDecoded: p.framesDecoded || 0,
               stalls: p.stalls || 0, fatalErrors: (p.fatalErrors || []).slice(), errors: (p.errors || []).slice(-20),
               currentTime: v ? v.currentTime : null, bufferedEnd: b, paused: v ? v.paused : null,
               readyState: v ? v.readyState : null, videoWidth: v ? v.videoWidth : null,
               videoHeight: v ? v.videoHeight : null, periodSwitches: (p.periodSwitches || []).slice(),
               freezes: (p.freezes || []).slice() };
    });
    result.samples.push(s);
  }
  const shot = join(resolve(outDir), `${mode}-player.png`);
  await page.screenshot({ path: shot });
  result.screenshot = shot;
  result.final = result.samples[result.samples.length - 1] || null;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (process.env.SF_DASH_DEBUG) writeFileSync(join(resolve(outDir), 'console.txt'), consoleLog.join('\n') + '\n');
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + '\n');
