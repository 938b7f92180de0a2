// Drives the operator dashboard in headless Chromium (Debian's /usr/bin/chromium via
// playwright-core) as a person would, and reports what it saw as one JSON line on stdout.
//
//   node dashboard.mjs <dashboard URL> <admin API key file> <stream name> <clip.flv> <out dir>
//
// Signs in with the API key, creates a token-protected stream, reads the RTMP URL and the key the
// page shows and publishes the clip there with ffmpeg (looped), waits for the page to show the
// stream live, the charts to fill and the preview to play (with its latency), issues a viewer
// token, rotates the stream key, makes the stream public (the preview plays again without a
// token), and saves screenshots in <out dir>. ffmpeg is stopped at the end.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const [url, keyFile, stream, clip, outDir] = process.argv.slice(2);
if (!url || !keyFile || !stream || !clip || !outDir) {
  console.error('usage: node dashboard.mjs URL KEY_FILE STREAM CLIP OUT_DIR');
  process.exit(2);
}

const result = { steps: [], console: [], pageErrors: [], failed: [], screenshot: null };
const step = (name, extra = {}) => result.steps.push({ name, t: Date.now(), ...extra });
const profile = mkdtempSync(join(tmpdir(), 'sf-chromium-'));
let context;
let ffmpeg;
let page;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SF_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 1300 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
  page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (['error', 'warning'].includes(m.type()) && result.console.length < 100) result.console.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => result.pageErrors.push(String(e)));
  page.on('response', (r) => { if (r.status() >= 400 && result.failed.length < 50) result.failed.push(`${r.status()} ${r.url()}`); });
  const dashboard = () => page.evaluate(() => window.sfDashboard);
  const waitFor = async (what, pred, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await pred();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await page.waitForTimeout(250);
    }
  };

  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  // A wrong key is refused with a message, and the app stays hidden.
  await page.fill('[data-testid=api-key]', 'sfa_not_a_key');
  await page.click('[data-testid=sign-in]');
  await page.waitForSelector('[data-testid=sign-in-error]:not(:empty)', { timeout: 10000 });
  result.wrongKeyMessage = await page.textContent('[data-testid=sign-in-error]');
  await page.fill('[data-testid=api-key]', readFileSync(keyFile, 'utf8').trim());
  await page.click('[data-testid=sign-in]');
  await page.waitForSelector('#app:not([hidden])', { timeout: 10000 });
  result.who = await page.textContent('[data-testid=who]');
  step('signed in');

  await page.fill('[data-testid=create-name]', stream);
  await page.selectOption('[data-testid=create-visibility]', 'token');
  await page.click('[data-testid=create]');
  await page.waitForSelector('[data-testid=secret-key]:not(:empty)', { timeout: 10000 });
  await page.waitForSelector('[data-testid=d-rtmp]:not(:empty)', { timeout: 10000 });
  const key = (await page.textContent('[data-testid=secret-key]')).trim();
  const rtmp = (await page.textContent('[data-testid=d-rtmp]')).trim();
  result.rtmpUrl = rtmp;
  result.firstKey = key;
  result.listed = await page.isVisible(`[data-testid=stream-${stream}]`);
  step('created', { rtmp });

  // Publish with the key shown in the page, as a broadcaster would paste it into OBS or ffmpeg.
  ffmpeg = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', clip,
                            '-c', 'copy', '-f', 'flv', `${rtmp}/${key}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let ffmpegErr = '';
  ffmpeg.stderr.on('data', (d) => { ffmpegErr = (ffmpegErr + d).slice(-2000); });
  await waitFor('the LIVE badge', async () => (await page.textContent('[data-testid=d-live]')) === 'LIVE', 20000);
  step('live');

  await waitFor('the preview to play', async () => (await dashboard()).preview.playing, 30000);
  step('preview playing');
  const frames = () => page.evaluate(() => {
    const v = document.querySelector('[data-testid=preview]');
    return v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
  });
  await waitFor('a latency figure', async () => (await dashboard()).preview.latency != null, 15000);
  const framesBefore = await frames();
  const samples = [];
  for (let i = 0; i < 6; i++) {
    await page.waitForTimeout(1000);
    const d = await dashboard();
    samples.push({ latency: d.preview.latency, frames: await frames() });
  }
  result.preview = {
    url: (await dashboard()).preview.url,
    framesAdvanced: samples[samples.length - 1].frames - framesBefore,
    latencies: samples.map((s) => s.latency),
    shownLatency: await page.textContent('[data-testid=latency]'),
    errors: (await dashboard()).preview.errors,
  };
  await waitFor('three chart points', async () => Number(await page.getAttribute('[data-testid=c-bitrate]', 'data-points')) >= 3, 15000);
  result.chartPoints = Number(await page.getAttribute('[data-testid=c-bitrate]', 'data-points'));
  result.shown = {
    bitrate: await page.textContent('[data-testid=v-bitrate]'),
    fps: await page.textContent('[data-testid=v-fps]'),
    gop: await page.textContent('[data-testid=v-gop]'),
    viewers: await page.textContent('[data-testid=d-viewers]'),
    video: await page.textContent('[data-testid=d-video]'),
  };
  step('charts');

  await page.click('[data-testid=issue-token]');
  await page.waitForSelector('[data-testid=token-url]:not(:empty)', { timeout: 10000 });
  result.tokenUrl = await page.textContent('[data-testid=token-url]');
  // While the stream is token-only, its playlist without the token is refused.
  const bare = result.tokenUrl.split('?')[0];
  result.barePlaybackStatus = (await fetch(bare)).status;
  result.tokenPlaybackStatus = (await fetch(result.tokenUrl)).status;
  step('token issued');

  const shotBefore = join(resolve(outDir), 'dashboard-live.png');
  await page.screenshot({ path: shotBefore, fullPage: true });

  await page.fill('#grace', '300');
  await page.click('[data-testid=rotate]');
  await waitFor('a new key', async () => {
    const k = (await page.textContent('[data-testid=secret-key]')).trim();
    return k && k !== key;
  }, 10000);
  result.rotatedKey = (await page.textContent('[data-testid=secret-key]')).trim();
  await waitFor('the key table to show the grace period', async () =>
    (await page.locator('[data-testid=keys] tr[data-state=grace]').count()) === 1, 10000);
  result.keyStates = await page.$$eval('[data-testid=keys] tbody tr', (rows) => rows.map((r) => r.dataset.state));
  step('rotated');
  result.stillLive = (await page.textContent('[data-testid=d-live]')) === 'LIVE';

  // Made public: the preview starts again, now without a token.
  await page.click('[data-testid=toggle-visibility]');
  await waitFor('the stream to be public', async () => (await page.textContent('#d-visibility')) === 'public', 10000);
  await waitFor('the preview to play without a token', async () => {
    const d = await dashboard();
    return d.preview.playing && d.preview.url && !d.preview.url.includes('token=');
  }, 30000);
  result.publicPreviewUrl = (await dashboard()).preview.url;
  step('made public');

  const shot = join(resolve(outDir), 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  result.screenshot = shot;
  result.screenshots = [shotBefore, shot];
  result.ffmpegExit = ffmpeg.exitCode;
  result.ffmpegErr = ffmpegErr;
} catch (e) {
  result.error = String((e && e.stack) || e);
  if (page) {
    const shot = join(resolve(outDir), 'dashboard-failure.png');
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    result.screenshot = shot;
  }
} finally {
  if (ffmpeg && ffmpeg.exitCode === null) {
    ffmpeg.kill('SIGINT');
    await new Promise((r) => { const t = setTimeout(() => { ffmpeg.kill('SIGKILL'); r(); }, 5000); ffmpeg.on('exit', () => { clearTimeout(t); r(); }); });
  }
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
