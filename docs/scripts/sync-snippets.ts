// Copies every snippet into the guides (docs/guides/*.md and docs/README.md).
//   npm run sync -w @grpc-tower/docs            rewrite the guides
//   npm run check -w @grpc-tower/docs           fail if a guide is out of date
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderGuide } from './snippets.js';

const docs = fileURLToPath(new URL('..', import.meta.url));
const guides = [
  join(docs, 'README.md'),
  ...readdirSync(join(docs, 'guides'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(docs, 'guides', f)),
];
const check = process.argv.includes('--check');
let stale = 0;
for (const file of guides) {
  const before = readFileSync(file, 'utf8');
  const { text, snippets } = renderGuide(file, before);
  if (text === before) continue;
  stale++;
  if (check) console.error(`${file}: out of date (${snippets.length} snippets)`);
  else {
    writeFileSync(file, text);
    console.log(`${file}: updated`);
  }
}
if (check && stale > 0) {
  console.error('run: npm run sync -w @grpc-tower/docs');
  process.exitCode = 1;
}
