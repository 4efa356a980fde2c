// A package-lock.json for a project outside the repository, built from the
// repository's own lockfile, so that `npm install --offline` installs it
// from the npm cache alone. npm 11 resolves a dependency that no lockfile
// names from the full registry document of its package, which `npm ci`
// does not cache (it caches the tarballs and the abbreviated documents);
// with every version written down here, npm fetches nothing but tarballs,
// and those `npm ci` has cached. Each version is one the repository's
// lockfile holds (under any name, `npm:` aliases included).

/** An entry of a lockfile's `packages`. */
export interface LockEntry {
  readonly name?: string;
  readonly version: string;
  readonly resolved?: string;
  readonly integrity?: string;
  readonly link?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly peerDependenciesMeta?: Readonly<Record<string, { readonly optional?: boolean }>>;
  readonly [field: string]: unknown;
}

export interface Lockfile {
  readonly packages: Readonly<Record<string, LockEntry>>;
}

/** A package to install from a local tarball, with its manifest. */
export interface LocalTarball {
  readonly name: string;
  readonly version: string;
  /** Relative to the project, such as `../tarballs/grpc-tower-core-0.1.0.tgz`. */
  readonly file: string;
  readonly integrity: string;
  readonly manifest: LockEntry;
}

type Version = readonly [number, number, number];

function parse(version: string): Version | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

const compare = (a: Version, b: Version): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** One comparator (`^1.2.3`, `~1.2.3`, `>=1.2.3`, `1.2.x`, `*`) as a test. */
function comparator(text: string): (v: Version) => boolean {
  if (text === '*' || text === '' || text === 'x') return () => true;
  const x = /^(\d+)(?:\.(\d+|x))?(?:\.x)?$/.exec(text);
  if (x && !/^\d+\.\d+\.\d+$/.test(text)) {
    const major = Number(x[1]);
    const minor = x[2] === undefined || x[2] === 'x' ? undefined : Number(x[2]);
    return (v) => v[0] === major && (minor === undefined || v[1] === minor);
  }
  const m = /^(\^|~|>=|<=|>|<|=)?(.+)$/.exec(text);
  const base = m ? parse(m[2]!) : undefined;
  if (!m || !base) throw new Error(`unsupported version range part "${text}"`);
  switch (m[1]) {
    case '^':
      return (v) =>
        compare(v, base) >= 0 &&
        (base[0] > 0
          ? v[0] === base[0]
          : base[1] > 0
            ? v[0] === 0 && v[1] === base[1]
            : compare(v, base) === 0);
    case '~':
      return (v) => compare(v, base) >= 0 && v[0] === base[0] && v[1] === base[1];
    case '>=':
      return (v) => compare(v, base) >= 0;
    case '>':
      return (v) => compare(v, base) > 0;
    case '<=':
      return (v) => compare(v, base) <= 0;
    case '<':
      return (v) => compare(v, base) < 0;
    default:
      return (v) => compare(v, base) === 0;
  }
}

/** Whether `version` (a release, not a pre-release) is in `range`. */
export function satisfies(version: string, range: string): boolean {
  const v = parse(version);
  if (!v) return false;
  return range.split('||').some((set) => {
    const parts = set.trim().split(/\s+/);
    return parts.every((p) => {
      // a pre-release alternative (`1.0.0-beta.1`) matches no release
      if (/-/.test(p)) return false;
      return comparator(p)(v);
    });
  });
}

/** The registry address of a package's tarball. */
const tarballUrl = (name: string, version: string): string =>
  `https://registry.npmjs.org/${name}/-/${name.split('/').at(-1)}-${version}.tgz`;

/** The fields of a lockfile entry that say what the package is and needs. */
function describe(entry: LockEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of [
    'license',
    'dependencies',
    'optionalDependencies',
    'peerDependencies',
    'peerDependenciesMeta',
    'bin',
    'engines',
    'os',
    'cpu',
    'hasInstallScript',
  ]) {
    if (entry[key] !== undefined) out[key] = entry[key];
  }
  return out;
}

/**
 * The lockfile of a project named `name` whose package.json has
 * `dependencies` and `devDependencies`: the tarballs as given, every other
 * package at the highest version the repository's lockfile holds that its
 * range accepts, hoisted to the top unless another version is there already.
 * Optional peers are left out, as npm leaves them.
 */
export function projectLock(
  name: string,
  repoLock: Lockfile,
  dependencies: Readonly<Record<string, string>>,
  devDependencies: Readonly<Record<string, string>>,
  tarballs: readonly LocalTarball[],
): object {
  const known = new Map<string, LockEntry[]>();
  for (const [path, entry] of Object.entries(repoLock.packages)) {
    if (path === '' || entry.link === true || !path.includes('node_modules/')) continue;
    const pkg = entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    known.set(pkg, [...(known.get(pkg) ?? []), entry]);
  }
  const local = new Map(tarballs.map((t) => [t.name, t]));
  const packages: Record<string, Record<string, unknown>> = {
    '': { name, version: '0.0.0', dependencies, devDependencies },
  };
  const under = (dir: string, pkg: string): string => `${dir === '' ? '' : `${dir}/`}node_modules/${pkg}`;

  /** The lockfile entry of `pkg` at the version `range` asks for. */
  const entryFor = (pkg: string, range: string, from: string): Record<string, unknown> => {
    const tarball = local.get(pkg);
    if (tarball !== undefined) {
      return {
        version: tarball.version,
        resolved: `file:${tarball.file}`,
        integrity: tarball.integrity,
        ...describe(tarball.manifest),
      };
    }
    const best = (known.get(pkg) ?? [])
      .filter((e) => satisfies(e.version, range))
      .sort((a, b) => compare(parse(b.version) ?? [0, 0, 0], parse(a.version) ?? [0, 0, 0]))[0];
    if (best === undefined) {
      throw new Error(
        `package-lock.json holds no version of ${pkg} in "${range}" (for ${from || 'the project'})`,
      );
    }
    return {
      version: best.version,
      resolved: tarballUrl(pkg, best.version),
      integrity: best.integrity,
      ...describe(best),
    };
  };

  /** What the package at `path` needs installed: its dependencies and required peers. */
  const needsOf = (path: string): [string, string][] => {
    const entry = packages[path]!;
    const meta = (entry.peerDependenciesMeta ?? {}) as Record<string, { optional?: boolean }>;
    const peers = Object.entries((entry.peerDependencies ?? {}) as Record<string, string>).filter(
      ([peer]) => meta[peer]?.optional !== true,
    );
    return [
      ...Object.entries((entry.dependencies ?? {}) as Record<string, string>),
      ...Object.entries((entry.optionalDependencies ?? {}) as Record<string, string>),
      ...peers,
    ];
  };

  /** The folders node looks in from the package at `path`, nearest first: `path`, its parents, the project. */
  const lookup = (path: string): string[] => {
    const out = [path];
    for (let p = path; p !== ''; ) {
      const i = p.lastIndexOf('/node_modules/');
      p = i < 0 ? '' : p.slice(0, i);
      out.push(p);
    }
    return out;
  };

  /** Makes `pkg@range` resolvable from the package at `from`, then what it needs in turn. */
  const place = (pkg: string, range: string, from: string): void => {
    let target = under('', pkg);
    for (const dir of lookup(from)) {
      const found = packages[under(dir, pkg)];
      if (found === undefined) continue;
      if (local.has(pkg) || satisfies(found.version as string, range)) return;
      // another version is what node would find: this one goes beside the package that needs it
      target = under(from, pkg);
      break;
    }
    packages[target] = entryFor(pkg, range, from);
    for (const [dep, depRange] of needsOf(target)) place(dep, depRange, target);
  };

  // the project's own dependencies first, at the top, then what each needs
  const direct = Object.entries({ ...dependencies, ...devDependencies });
  for (const [pkg, range] of direct) packages[under('', pkg)] = entryFor(pkg, range, '');
  for (const [pkg] of direct) {
    const path = under('', pkg);
    for (const [dep, depRange] of needsOf(path)) place(dep, depRange, path);
  }
  return { name, version: '0.0.0', lockfileVersion: 3, requires: true, packages };
}
