// Assembles web/dist: the player page and the pinned hls.js from node_modules. No bundler needed.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
mkdirSync(join(dist, 'player'), { recursive: true });
copyFileSync(join(here, 'src', 'index.html'), join(dist, 'index.html'));
copyFileSync(join(here, 'src', 'player.js'), join(dist, 'player', 'player.js'));
copyFileSync(join(here, 'node_modules', 'hls.js', 'dist', 'hls.min.js'), join(dist, 'player', 'hls.min.js'));
console.log('web/dist ready');
