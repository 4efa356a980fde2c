// The migration guide's code is what a reader copies into a project: each
// TypeScript block, exactly as the guide shows it, is compiled on its own as
// a module (with the docs' compiler options), so that a name it uses without
// importing it is an error here. The only names given to it are the
// application's own (snippets/migrating/app.d.ts: its client class, service
// definition, CA certificate and a client).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const docs = fileURLToPath(new URL('..', import.meta.url));
const guide = join(docs, 'guides', 'migrating.md');
const appNames = join(docs, 'snippets', 'migrating', 'app.d.ts');

interface Block {
  /** 1-based line of the block's snippet marker in the guide. */
  readonly line: number;
  readonly code: string;
}

/** The TypeScript blocks of a guide's snippets, as the guide shows them. */
function tsBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  const re = /^<!-- snippet: \S+ -->\n(`{3,})ts\n([\s\S]*?)\n\1\n<!-- \/snippet -->$/gm;
  for (const m of text.matchAll(re)) {
    blocks.push({ line: text.slice(0, m.index).split('\n').length, code: m[2] ?? '' });
  }
  return blocks;
}

/** Compiles each of `sources` as its own module beside the snippets; the errors of each, as text. */
function compile(sources: readonly string[]): string[][] {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(docs, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (config === undefined) throw new Error('docs/tsconfig.json could not be read');
  const options = { ...config.options, noEmit: true };
  // in docs/snippets/migrating/, so that imports resolve and the module format is the docs package's
  const names = sources.map((_, i) => join(docs, 'snippets', 'migrating', `shown-${i}.ts`));
  const virtual = new Map(names.map((name, i) => [name, sources[i] ?? '']));
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, onError, fresh) => {
    const text = virtual.get(name);
    return text === undefined
      ? getSourceFile(name, language, onError, fresh)
      : ts.createSourceFile(name, text, language);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => virtual.has(name) || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => virtual.get(name) ?? readFile(name);
  const program = ts.createProgram({ rootNames: [appNames, ...names], options, host });
  const global = ts.getPreEmitDiagnostics(program).filter((d) => d.file === undefined);
  expect(global.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  return names.map((name) => {
    const file = program.getSourceFile(name);
    if (file === undefined) throw new Error(`${name} was not compiled`);
    return ts.getPreEmitDiagnostics(program, file).map((d) => {
      const at =
        d.start === undefined ? '' : `line ${file.getLineAndCharacterOfPosition(d.start).line + 1}: `;
      return `${at}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
  });
}

describe('the migration guide', () => {
  test('every TypeScript block compiles on its own, with its imports', () => {
    const blocks = tsBlocks(readFileSync(guide, 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(7);
    // a block missing an import, and one with it: the check sees the difference
    const missing = 'export const budget = retryThrottling({ maxTokens: 10, tokenRatio: 0.1 });';
    const imported = `import { retryThrottling } from '@grpc-tower/retry';\n${missing}`;
    const [control, fixed, ...errors] = compile([missing, imported, ...blocks.map((b) => b.code)]);
    expect(control).toEqual([expect.stringContaining("Cannot find name 'retryThrottling'")]);
    expect(fixed).toEqual([]);
    const failing = blocks
      .map((b, i) => ({ at: `migrating.md:${b.line}`, errors: errors[i] }))
      .filter((b) => b.errors?.length !== 0);
    expect(failing).toEqual([]);
  }, 60_000);
});
