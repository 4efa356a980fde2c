import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { extractRegion, looseFences, renderGuide } from '../scripts/snippets.js';

const docs = fileURLToPath(new URL('..', import.meta.url));
const guides = [
  join(docs, 'README.md'),
  ...readdirSync(join(docs, 'guides'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(docs, 'guides', f)),
];

describe('guides', () => {
  test.each(guides.map((g) => [g.slice(docs.length)]))(
    '%s: every code block is its snippet, up to date',
    (name) => {
      const file = join(docs, name);
      const text = readFileSync(file, 'utf8');
      const { text: rendered } = renderGuide(file, text);
      // when this fails: npm run sync -w @grpc-tower/docs
      expect(text).toBe(rendered);
      // TypeScript is never typed into a guide by hand: it comes from a type-checked file
      const loose = looseFences(text).filter((f) => ['ts', 'typescript', 'js', 'tsx'].includes(f.language));
      expect(loose, `hand-written code blocks in ${name}`).toEqual([]);
    },
  );

  test('there are guides, and they use snippets', () => {
    const all = guides.map((g) => renderGuide(g, readFileSync(g, 'utf8')).snippets.length);
    expect(guides.length).toBeGreaterThanOrEqual(10);
    expect(all.reduce((a, b) => a + b, 0)).toBeGreaterThan(20);
  });
});

describe('snippet extraction', () => {
  const source = [
    'import x from "y";',
    '// #region a',
    '  const a = 1;',
    '  // #region inner',
    '  const b = 2;',
    '  // #endregion inner',
    '// #endregion a',
  ].join('\n');

  test('a region is dedented and loses nested markers', () => {
    expect(extractRegion(source, 'a', 'x')).toBe('const a = 1;\nconst b = 2;');
    expect(extractRegion(source, 'inner', 'x')).toBe('const b = 2;');
  });

  test('a missing region or an unclosed marker is an error naming it', () => {
    expect(() => extractRegion(source, 'nope', 'g.md:3')).toThrow('g.md:3: no "#region nope"');
    const md = '<!-- snippet: a.ts -->\n```ts\n```\n';
    expect(() => renderGuide('/d/g.md', md, () => '')).toThrow('/d/g.md:1');
  });

  test('a block is replaced by the file, in a fence of its language', () => {
    const md = 'text\n<!-- snippet: k8s.yaml -->\n```yaml\nold\n```\n<!-- /snippet -->\nmore';
    const { text, snippets } = renderGuide('/d/g.md', md, (p) => (p === '/d/k8s.yaml' ? 'a: 1\n' : ''));
    expect(text).toBe('text\n<!-- snippet: k8s.yaml -->\n```yaml\na: 1\n```\n<!-- /snippet -->\nmore');
    expect(snippets).toEqual([{ path: 'k8s.yaml', region: undefined, line: 2 }]);
  });

  test('code holding a fence gets a longer fence, which ends only at its own length', () => {
    const md = '<!-- snippet: a.ts -->\n```ts\n```\n<!-- /snippet -->\n';
    const code = '/**\n * ```ts\n * f();\n * ```\n */\nexport function f(): void {}';
    const { text } = renderGuide(
      '/d/g.md',
      md,
      () => code,
      (c) => c,
    );
    expect(text).toBe(`<!-- snippet: a.ts -->\n\`\`\`\`ts\n${code}\n\`\`\`\`\n<!-- /snippet -->\n`);
    expect(looseFences(`${text}\n\`\`\`ts\nloose\n\`\`\``)).toEqual([{ language: 'ts', line: 12 }]);
  });

  test('fences outside snippet blocks are found', () => {
    const md = '```sh\nnpm ci\n```\n<!-- snippet: a.ts -->\n```ts\nx\n```\n<!-- /snippet -->\n```ts\ny\n```';
    expect(looseFences(md)).toEqual([
      { language: 'sh', line: 1 },
      { language: 'ts', line: 9 },
    ]);
  });
});
