/**
 * Code in the guides comes from files that are type-checked (`docs/snippets/`
 * and the examples), never typed into the markdown by hand. A guide marks
 * where a file, or a region of it, goes:
 *
 *     <!-- snippet: ../snippets/concepts.ts#layer -->
 *     ```ts
 *     …copied here by `npm run sync -w @grpc-tower/docs`…
 *     ```
 *     <!-- /snippet -->
 *
 * The path is relative to the guide. `#name` selects the lines between
 * `#region name` and `#endregion name` (in a comment of the file's
 * language), dedented; without it the whole file is taken. Region marker
 * lines never appear in the output. TypeScript is then formatted with the
 * repository's Biome settings, as Biome formats code blocks in markdown:
 * a dedented region may fit lines that were wrapped at its old indentation.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const OPEN = /^<!-- snippet: (\S+?)(?:#([\w-]+))? -->$/;
const CLOSE = '<!-- /snippet -->';
const REGION = /#(end)?region(?:\s+([\w-]+))?/;

const LANGUAGES: Readonly<Record<string, string>> = {
  '.ts': 'ts',
  '.mts': 'ts',
  '.js': 'js',
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
  '.sh': 'sh',
  '.proto': 'proto',
};

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const formatted = new Map<string, string>();

/** Formats TypeScript or JavaScript `code` as Biome would in a markdown code block; other code is returned as is. */
export function formatCode(code: string, language: string): string {
  if (language !== 'ts' && language !== 'js') return code;
  const key = `${language}\0${code}`;
  const known = formatted.get(key);
  if (known !== undefined) return known;
  const out = execFileSync(
    resolve(ROOT, 'node_modules/.bin/biome'),
    ['format', `--stdin-file-path=docs/snippets/snippet.${language}`],
    { cwd: ROOT, input: code, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const result = out.replace(/\n+$/, '');
  formatted.set(key, result);
  return result;
}

/** A snippet marker found in a guide. */
export interface SnippetRef {
  /** The path as written in the marker. */
  readonly path: string;
  readonly region: string | undefined;
  /** 1-based line of the opening marker. */
  readonly line: number;
}

/** The lines of `region` in `text` (the whole text without marker lines when `region` is undefined), dedented. */
export function extractRegion(text: string, region: string | undefined, where: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  let picked: string[];
  if (region === undefined) {
    picked = lines;
  } else {
    const start = lines.findIndex((l) => {
      const m = REGION.exec(l);
      return m !== null && m[1] === undefined && m[2] === region;
    });
    if (start < 0) throw new Error(`${where}: no "#region ${region}"`);
    const end = lines.findIndex((l, i) => {
      const m = REGION.exec(l);
      return i > start && m !== null && m[1] === 'end' && (m[2] === undefined || m[2] === region);
    });
    if (end < 0) throw new Error(`${where}: "#region ${region}" has no "#endregion ${region}"`);
    picked = lines.slice(start + 1, end);
  }
  picked = picked.filter((l) => !REGION.test(l));
  while (picked.length > 0 && picked[0]?.trim() === '') picked.shift();
  while (picked.length > 0 && picked.at(-1)?.trim() === '') picked.pop();
  const indent = Math.min(
    ...picked.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0),
  );
  return picked.map((l) => l.slice(Number.isFinite(indent) ? indent : 0)).join('\n');
}

/**
 * Returns `markdown` (the guide at `file`) with every snippet block filled
 * from its source, and the snippets it found. Throws on a marker that is not
 * closed or names a missing file or region.
 */
export function renderGuide(
  file: string,
  markdown: string,
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
  format: (code: string, language: string) => string = formatCode,
): { text: string; snippets: SnippetRef[] } {
  const lines = markdown.split('\n');
  const out: string[] = [];
  const snippets: SnippetRef[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const open = OPEN.exec(line.trim());
    if (open === null) {
      out.push(line);
      continue;
    }
    const [, path, region] = open as unknown as [string, string, string | undefined];
    const where = `${file}:${i + 1}`;
    const close = lines.findIndex((l, j) => j > i && l.trim() === CLOSE);
    if (close < 0) throw new Error(`${where}: "${line.trim()}" is not closed by "${CLOSE}"`);
    const source = resolve(dirname(file), path);
    const language = LANGUAGES[extname(source)] ?? '';
    const code = format(extractRegion(read(source), region, `${where} (${path})`), language);
    // a fence longer than any run of backticks in the code (which may hold a fenced example in a comment)
    const longest = Math.max(0, ...[...code.matchAll(/`+/g)].map((m) => m[0].length));
    const fence = '`'.repeat(Math.max(3, longest + 1));
    out.push(line, `${fence}${language}`, code, fence, lines[close] as string);
    snippets.push({ path, region, line: i + 1 });
    i = close;
  }
  return { text: out.join('\n'), snippets };
}

/**
 * The code fences of `markdown` that are not inside a snippet block, with
 * their language and 1-based line: hand-written code.
 */
export function looseFences(markdown: string): { language: string; line: number }[] {
  const loose: { language: string; line: number }[] = [];
  let inSnippet = false;
  let fence: string | undefined; // the opening fence while inside a code block
  for (const [i, raw] of markdown.split('\n').entries()) {
    const line = raw.trim();
    const ticks = /^`{3,}/.exec(line)?.[0];
    if (fence !== undefined) {
      // a closing fence: backticks only, at least as many as the opening one
      if (ticks !== undefined && line === ticks && ticks.length >= fence.length) fence = undefined;
    } else if (OPEN.test(line)) inSnippet = true;
    else if (line === CLOSE) inSnippet = false;
    else if (ticks !== undefined) {
      if (!inSnippet) loose.push({ language: line.slice(ticks.length).trim(), line: i + 1 });
      fence = ticks;
    }
  }
  return loose;
}
