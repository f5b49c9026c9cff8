/**
 * What a pickle may import. The denylist covers the union of picklescan's and ProtectAI modelscan's lists plus the
 * import machinery, code objects and every standard module that reaches a shell, the file system, the network or the
 * interpreter; the allowlist names the globals that ordinary tensor checkpoints need. Anything in neither is reported
 * as unknown (or, in strict mode, as not allowlisted).
 */
import type { Severity } from '../../contract/types';
import { printable } from './findings';

/** `'*'` denies every name in the module and its submodules; a list denies those names (and their attributes). */
type DenyEntry = { names: '*' | readonly string[]; severity: Severity; why: string };

const EXEC = 'runs code';
const SHELL = 'reaches a shell or spawns processes';
const FS = 'reads or writes files';
const NET = 'opens network connections';
const INTERP = 'reaches the interpreter or the import machinery';
const LOADS = 'loads another serialized object';

const BUILTIN_DANGER = [
  'eval',
  'exec',
  'execfile',
  'compile',
  '__import__',
  'open',
  'file',
  'input',
  'breakpoint',
  'getattr',
  'setattr',
  'delattr',
  'globals',
  'locals',
  'vars',
  'apply',
  'reload',
  'help',
  'memoryview',
];

/** Module → denied names. Keys are module names as pickle writes them. */
export const DENYLIST: Record<string, DenyEntry> = {
  builtins: { names: BUILTIN_DANGER, severity: 'critical', why: EXEC },
  __builtin__: { names: BUILTIN_DANGER, severity: 'critical', why: EXEC },
  __builtins__: { names: '*', severity: 'critical', why: EXEC },
  os: { names: '*', severity: 'critical', why: SHELL },
  nt: { names: '*', severity: 'critical', why: SHELL },
  posix: { names: '*', severity: 'critical', why: SHELL },
  _posixsubprocess: { names: '*', severity: 'critical', why: SHELL },
  subprocess: { names: '*', severity: 'critical', why: SHELL },
  commands: { names: '*', severity: 'critical', why: SHELL },
  popen2: { names: '*', severity: 'critical', why: SHELL },
  pty: { names: '*', severity: 'critical', why: SHELL },
  multiprocessing: { names: '*', severity: 'critical', why: SHELL },
  'concurrent.futures': { names: '*', severity: 'high', why: SHELL },
  platform: { names: ['popen', '_syscmd_file', '_syscmd_ver', 'system_alias'], severity: 'high', why: SHELL },
  uuid: { names: '*', severity: 'high', why: SHELL },
  _osx_support: { names: '*', severity: 'critical', why: SHELL },
  _aix_support: { names: '*', severity: 'critical', why: SHELL },
  _pyrepl: { names: '*', severity: 'critical', why: SHELL },
  imaplib: { names: '*', severity: 'high', why: SHELL },
  webbrowser: { names: '*', severity: 'high', why: SHELL },
  runpy: { names: '*', severity: 'critical', why: EXEC },
  code: { names: '*', severity: 'critical', why: EXEC },
  codeop: { names: '*', severity: 'critical', why: EXEC },
  importlib: { names: '*', severity: 'critical', why: INTERP },
  imp: { names: '*', severity: 'critical', why: INTERP },
  pkgutil: { names: '*', severity: 'critical', why: INTERP },
  zipimport: { names: '*', severity: 'critical', why: INTERP },
  marshal: { names: '*', severity: 'critical', why: EXEC },
  types: { names: '*', severity: 'critical', why: EXEC },
  ctypes: { names: '*', severity: 'critical', why: EXEC },
  _ctypes: { names: '*', severity: 'critical', why: EXEC },
  cffi: { names: '*', severity: 'critical', why: EXEC },
  sys: { names: '*', severity: 'critical', why: INTERP },
  site: { names: '*', severity: 'critical', why: INTERP },
  gc: { names: '*', severity: 'high', why: INTERP },
  inspect: { names: '*', severity: 'high', why: INTERP },
  ast: { names: '*', severity: 'high', why: EXEC },
  operator: { names: ['attrgetter', 'itemgetter', 'methodcaller'], severity: 'critical', why: INTERP },
  _operator: { names: ['attrgetter', 'itemgetter', 'methodcaller'], severity: 'critical', why: INTERP },
  functools: { names: ['partial', 'reduce', 'partialmethod', 'singledispatch'], severity: 'high', why: EXEC },
  pickle: { names: '*', severity: 'critical', why: LOADS },
  _pickle: { names: '*', severity: 'critical', why: LOADS },
  cPickle: { names: '*', severity: 'critical', why: LOADS },
  pickletools: { names: '*', severity: 'high', why: LOADS },
  dill: { names: '*', severity: 'critical', why: LOADS },
  cloudpickle: { names: '*', severity: 'critical', why: EXEC },
  shelve: { names: '*', severity: 'critical', why: LOADS },
  jsonpickle: { names: '*', severity: 'critical', why: LOADS },
  yaml: {
    names: ['load', 'unsafe_load', 'full_load', 'load_all', 'unsafe_load_all', 'UnsafeLoader', 'Loader'],
    severity: 'critical',
    why: LOADS,
  },
  copyreg: { names: ['add_extension', 'remove_extension', 'pickle', 'constructor'], severity: 'high', why: INTERP },
  bdb: { names: '*', severity: 'critical', why: EXEC },
  pdb: { names: '*', severity: 'critical', why: EXEC },
  trace: { names: '*', severity: 'critical', why: EXEC },
  profile: { names: '*', severity: 'critical', why: EXEC },
  cProfile: { names: '*', severity: 'critical', why: EXEC },
  timeit: { names: '*', severity: 'critical', why: EXEC },
  doctest: { names: '*', severity: 'critical', why: EXEC },
  pydoc: { names: '*', severity: 'critical', why: INTERP },
  idlelib: { names: '*', severity: 'critical', why: EXEC },
  lib2to3: { names: '*', severity: 'high', why: EXEC },
  ensurepip: { names: '*', severity: 'critical', why: SHELL },
  pip: { names: '*', severity: 'critical', why: SHELL },
  venv: { names: '*', severity: 'critical', why: SHELL },
  distutils: { names: '*', severity: 'critical', why: SHELL },
  setuptools: { names: '*', severity: 'critical', why: SHELL },
  test: { names: '*', severity: 'critical', why: SHELL },
  unittest: { names: '*', severity: 'high', why: EXEC },
  asyncio: { names: '*', severity: 'critical', why: SHELL },
  threading: { names: '*', severity: 'high', why: EXEC },
  _thread: { names: '*', severity: 'high', why: EXEC },
  signal: { names: '*', severity: 'high', why: INTERP },
  atexit: { names: '*', severity: 'high', why: EXEC },
  socket: { names: '*', severity: 'critical', why: NET },
  _socket: { names: '*', severity: 'critical', why: NET },
  ssl: { names: '*', severity: 'high', why: NET },
  select: { names: '*', severity: 'high', why: NET },
  selectors: { names: '*', severity: 'high', why: NET },
  socketserver: { names: '*', severity: 'high', why: NET },
  http: { names: '*', severity: 'high', why: NET },
  httplib: { names: '*', severity: 'high', why: NET },
  urllib: { names: '*', severity: 'high', why: NET },
  urllib2: { names: '*', severity: 'high', why: NET },
  urllib3: { names: '*', severity: 'high', why: NET },
  requests: { names: '*', severity: 'high', why: NET },
  httpx: { names: '*', severity: 'high', why: NET },
  aiohttp: { names: '*', severity: 'high', why: NET },
  ftplib: { names: '*', severity: 'high', why: NET },
  smtplib: { names: '*', severity: 'high', why: NET },
  poplib: { names: '*', severity: 'high', why: NET },
  nntplib: { names: '*', severity: 'high', why: NET },
  telnetlib: { names: '*', severity: 'high', why: NET },
  xmlrpc: { names: '*', severity: 'high', why: NET },
  asyncore: { names: '*', severity: 'high', why: NET },
  asynchat: { names: '*', severity: 'high', why: NET },
  paramiko: { names: '*', severity: 'high', why: NET },
  shutil: { names: '*', severity: 'critical', why: FS },
  tempfile: { names: '*', severity: 'high', why: FS },
  io: {
    names: ['open', 'open_code', 'FileIO', 'TextIOWrapper', 'BufferedReader', 'BufferedWriter'],
    severity: 'high',
    why: FS,
  },
  _io: {
    names: ['open', 'open_code', 'FileIO', 'TextIOWrapper', 'BufferedReader', 'BufferedWriter'],
    severity: 'high',
    why: FS,
  },
  codecs: { names: ['open', 'EncodedFile'], severity: 'high', why: FS },
  pathlib: { names: '*', severity: 'high', why: FS },
  glob: { names: '*', severity: 'high', why: FS },
  fileinput: { names: '*', severity: 'high', why: FS },
  linecache: { names: '*', severity: 'high', why: FS },
  mmap: { names: '*', severity: 'high', why: FS },
  zipfile: { names: '*', severity: 'high', why: FS },
  tarfile: { names: '*', severity: 'high', why: FS },
  gzip: { names: ['open', 'GzipFile'], severity: 'high', why: FS },
  bz2: { names: ['open', 'BZ2File'], severity: 'high', why: FS },
  lzma: { names: ['open', 'LZMAFile'], severity: 'high', why: FS },
  sqlite3: { names: '*', severity: 'high', why: FS },
  dbm: { names: '*', severity: 'high', why: FS },
  logging: { names: '*', severity: 'high', why: FS },
  numpy: {
    names: ['load', 'loadtxt', 'fromfile', 'memmap', 'save', 'savez', 'tofile', 'genfromtxt'],
    severity: 'high',
    why: FS,
  },
  'numpy.f2py': { names: '*', severity: 'critical', why: EXEC },
  'numpy.testing': { names: '*', severity: 'critical', why: EXEC },
  'numpy.ctypeslib': { names: '*', severity: 'critical', why: EXEC },
  'numpy.lib.npyio': { names: '*', severity: 'high', why: LOADS },
  'numpy.distutils': { names: '*', severity: 'critical', why: SHELL },
  'torch.serialization': { names: ['load', '_load', '_legacy_load'], severity: 'critical', why: LOADS },
  torch: { names: ['load', 'jit', 'hub', 'ops', 'compile', 'package', 'classes'], severity: 'critical', why: LOADS },
  'torch.storage': { names: ['_load_from_bytes'], severity: 'high', why: LOADS },
  'torch.hub': { names: '*', severity: 'critical', why: NET },
  'torch.jit': { names: '*', severity: 'high', why: EXEC },
  'torch.package': { names: '*', severity: 'critical', why: LOADS },
  'torch._dynamo': { names: '*', severity: 'high', why: EXEC },
  'torch._inductor': { names: '*', severity: 'critical', why: SHELL },
  'torch.fx.experimental.symbolic_shapes': { names: '*', severity: 'critical', why: EXEC },
  'torch.jit.unsupported_tensor_ops': { names: '*', severity: 'critical', why: EXEC },
  'torch.utils._config_module': { names: '*', severity: 'critical', why: LOADS },
  'torch.utils.bottleneck': { names: '*', severity: 'critical', why: EXEC },
  'torch.utils.collect_env': { names: '*', severity: 'critical', why: SHELL },
  'torch.utils.cpp_extension': { names: '*', severity: 'critical', why: SHELL },
  'torch.utils.data.datapipes.utils.decoder': { names: '*', severity: 'critical', why: LOADS },
  joblib: { names: ['load'], severity: 'critical', why: LOADS },
  'joblib.numpy_pickle': { names: ['load'], severity: 'critical', why: LOADS },
  pandas: { names: ['read_pickle', 'eval', 'read_csv', 'read_parquet', 'read_hdf'], severity: 'high', why: LOADS },
  'pandas.io': { names: '*', severity: 'high', why: LOADS },
  keras: { names: ['models', 'saving'], severity: 'high', why: LOADS },
  'keras.models': { names: ['load_model'], severity: 'high', why: LOADS },
  'tensorflow.keras.models': { names: ['load_model'], severity: 'high', why: LOADS },
  jinja2: { names: '*', severity: 'high', why: EXEC },
  'requests.api': { names: '*', severity: 'high', why: NET },
};

/** Attribute names that, anywhere in a dotted pickle name, reach code or the interpreter. */
const DANGEROUS_ATTRIBUTES = new Set([
  'system',
  'popen',
  'spawn',
  'spawnv',
  'spawnl',
  'execv',
  'execve',
  'execl',
  'eval',
  'exec',
  'compile',
  '__import__',
  'import_module',
  'load_module',
  'loads',
  'load',
  'getattr',
  'setattr',
  'open',
  'run',
  'call',
  'check_output',
  'Popen',
]);

/**
 * Globals that ordinary checkpoints need (tensor rebuild functions, containers, numpy reconstruct). Entries are
 * `module:name`, `module:*` (any name) or `module.*:*` (the module and its submodules).
 */
export const DEFAULT_ALLOWLIST: readonly string[] = [
  'collections:OrderedDict',
  'collections:defaultdict',
  'collections:deque',
  'collections:Counter',
  'torch._utils:_rebuild_tensor',
  'torch._utils:_rebuild_tensor_v2',
  'torch._utils:_rebuild_tensor_v3',
  'torch._utils:_rebuild_parameter',
  'torch._utils:_rebuild_parameter_with_state',
  'torch._utils:_rebuild_qtensor',
  'torch._utils:_rebuild_sparse_tensor',
  'torch._utils:_rebuild_nested_tensor',
  'torch._utils:_rebuild_device_tensor_from_numpy',
  'torch._utils:_rebuild_meta_tensor_no_storage',
  'torch._utils:_rebuild_wrapper_subclass',
  'torch._tensor:_rebuild_from_type_v2',
  'torch._tensor:Tensor',
  'torch:Tensor',
  'torch:Size',
  'torch:device',
  'torch:UntypedStorage',
  'torch:TypedStorage',
  ...[
    'Double',
    'Float',
    'Half',
    'Long',
    'Int',
    'Short',
    'Char',
    'Byte',
    'Bool',
    'BFloat16',
    'ComplexDouble',
    'ComplexFloat',
    'QUInt8',
    'QInt8',
    'QInt32',
    'QUInt4x2',
    'QUInt2x4',
  ].map((t) => `torch:${t}Storage`),
  ...[
    'float16',
    'float32',
    'float64',
    'bfloat16',
    'half',
    'float',
    'double',
    'int8',
    'int16',
    'int32',
    'int64',
    'uint8',
    'uint16',
    'uint32',
    'uint64',
    'short',
    'int',
    'long',
    'bool',
    'complex64',
    'complex128',
    'cfloat',
    'cdouble',
    'float8_e4m3fn',
    'float8_e5m2',
    'float8_e4m3fnuz',
    'float8_e5m2fnuz',
    'qint8',
    'quint8',
    'qint32',
    'strided',
    'sparse_coo',
    'sparse_csr',
    'contiguous_format',
    'channels_last',
    'preserve_format',
    'per_tensor_affine',
    'per_channel_affine',
  ].map((t) => `torch:${t}`),
  'torch.storage:UntypedStorage',
  'torch.storage:TypedStorage',
  'torch.nn.parameter:Parameter',
  'numpy:ndarray',
  'numpy:dtype',
  'numpy.dtypes:*',
  'numpy.core.multiarray:_reconstruct',
  'numpy.core.multiarray:scalar',
  'numpy._core.multiarray:_reconstruct',
  'numpy._core.multiarray:scalar',
  'joblib.numpy_pickle:NumpyArrayWrapper',
  'copyreg:_reconstructor',
  'copyreg:__newobj__',
  'copyreg:__newobj_ex__',
  'copy_reg:_reconstructor',
  '_codecs:encode',
  ...['set', 'frozenset', 'list', 'dict', 'tuple', 'bytearray', 'bytes', 'complex', 'int', 'float', 'str', 'slice'].map(
    (t) => `builtins:${t}`,
  ),
  ...['set', 'frozenset', 'list', 'dict', 'tuple', 'bytearray', 'complex', 'int', 'float', 'slice', 'object'].map(
    (t) => `__builtin__:${t}`,
  ),
  'builtins:object',
  'datetime:datetime',
  'datetime:date',
  'datetime:time',
  'datetime:timedelta',
  'datetime:timezone',
  'decimal:Decimal',
];

export type GlobalClass =
  { kind: 'denied'; severity: Severity; why: string } | { kind: 'allowed' } | { kind: 'unknown' };

/** Classifies `module` + `name` imports against the denylist and an allowlist. */
export class GlobalPolicy {
  private readonly allowExact = new Set<string>();
  private readonly allowModules = new Set<string>();
  private readonly allowTrees: string[] = [];
  private readonly deny: Record<string, DenyEntry>;

  constructor(options: { allow?: readonly string[]; deny?: readonly string[] } = {}) {
    for (const entry of [...DEFAULT_ALLOWLIST, ...(options.allow ?? [])]) this.addAllow(entry);
    this.deny = { ...DENYLIST };
    for (const entry of options.deny ?? []) {
      const [module, name] = splitEntry(entry);
      const existing = this.deny[module];
      if (name === '*') this.deny[module] = { names: '*', severity: 'critical', why: 'denied by the policy' };
      else if (existing?.names !== '*')
        this.deny[module] = {
          names: [...(existing?.names ?? []), name],
          severity: existing?.severity ?? 'critical',
          why: existing?.why ?? 'denied by the policy',
        };
    }
  }

  private addAllow(entry: string): void {
    const [module, name] = splitEntry(entry);
    if (module.endsWith('.*') && name === '*') this.allowTrees.push(module.slice(0, -2));
    else if (name === '*') this.allowModules.add(module);
    else this.allowExact.add(`${module}:${name}`);
  }

  /** Denied wins over allowed, so an allowlist entry can never re-open a dangerous module. */
  classify(module: string, name: string): GlobalClass {
    const denied = this.denied(module, name);
    if (denied) return denied;
    if (
      this.allowExact.has(`${module}:${name}`) ||
      this.allowModules.has(module) ||
      this.allowTrees.some((t) => module === t || module.startsWith(`${t}.`))
    )
      return { kind: 'allowed' };
    return { kind: 'unknown' };
  }

  private denied(module: string, name: string): GlobalClass | undefined {
    // Python resolves dotted names attribute by attribute (protocol 4+), so `posixpath` + `os.system` is os.system.
    const parts = name.split('.');
    for (const part of parts.slice(1)) {
      if (part.startsWith('__') || DANGEROUS_ATTRIBUTES.has(part) || this.deny[part]?.names === '*')
        return { kind: 'denied', severity: 'critical', why: `reaches ${printable(part)} through a dotted name` };
    }
    if (module === '' || /[^A-Za-z0-9_.]/.test(module) || /[^A-Za-z0-9_.]/.test(name))
      return { kind: 'denied', severity: 'critical', why: 'is not a plain Python identifier (obfuscation)' };
    // A module is covered by its own entry or by any parent's `*` entry (os.path is os).
    const segments = module.split('.');
    for (let i = segments.length; i >= 1; i--) {
      const prefix = segments.slice(0, i).join('.');
      const entry = this.deny[prefix];
      if (!entry) continue;
      if (entry.names === '*') return { kind: 'denied', severity: entry.severity, why: entry.why };
      if (i === segments.length && (entry.names.includes(name) || entry.names.includes(parts[0] ?? '')))
        return { kind: 'denied', severity: entry.severity, why: entry.why };
      // code.InteractiveInterpreter.runcode style entries name a class attribute.
      if (i === segments.length && entry.names.some((n) => name.startsWith(`${n}.`)))
        return { kind: 'denied', severity: entry.severity, why: entry.why };
    }
    return undefined;
  }
}

function splitEntry(entry: string): [string, string] {
  const i = entry.indexOf(':');
  return i < 0 ? [entry, '*'] : [entry.slice(0, i), entry.slice(i + 1)];
}
