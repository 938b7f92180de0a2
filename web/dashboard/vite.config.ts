// The dashboard is served by the api role at / (relative asset URLs, so it works under any prefix).
// `npm run dev` proxies /api to a local `streamflex all`.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  // hls.js alone is about 500 kB minified.
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022', chunkSizeWarningLimit: 800 },
  server: { proxy: { '/api': 'http://127.0.0.1:8090' } },
});
