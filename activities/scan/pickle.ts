/**
 * A streaming pickle opcode walker. It never unpickles: it simulates just enough of the unpickler's stack and memo
 * to know what every GLOBAL, STACK_GLOBAL (including names fetched from the memo), INST and OBJ imports, and what
 * REDUCE, BUILD, NEWOBJ and NEWOBJ_EX call. Memory is bounded: strings are cut, containers keep a few items, and the
 * memo and stack have limits whose breach is a finding rather than a crash.
 */
import type { Severity } from '../../contract/types';
import { npyItemSize as dtypeSize } from '../formats/npy';
import { finding, printable, printableName, type ScanFinding } from './findings';
import type { GlobalPolicy } from './globals';
import type { ByteReader } from './reader';

/** A simulated stack value: only what classification needs survives. */
type V =
  | { t: 'str'; v: string }
  | { t: 'int'; v: number | bigint }
  | { t: 'global'; module: string; name: string }
  | { t: 'obj'; callee?: Extract<V, { t: 'global' }>; args?: V }
  | { t: 'tuple'; items: V[] }
  | { t: 'dict'; items: Map<string, V> }
  | { t: 'other' };

const OTHER: V = { t: 'other' };
const NONE: V = { t: 'other' };
/** Characters of a string that are kept (names and messages need no more). */
const STR_KEEP = 1024;
/** Items a tuple or dict keeps; enough for shapes and joblib's array state. */
const CONTAINER_KEEP = 64;
/** Bytes of a protocol-0 line that are kept. */
const LINE_KEEP = 4096;
/** Bytes between progress reports (and cancellation checks) inside one pickle. */
const PROGRESS_EVERY = 1 << 24;
/** What Machine.step() asks of run(). */
const DONE = 0;
const NEED_BYTES = 1;
const SLOW = 2;
/** The value torch.save writes first in its legacy (non-zip) format. */
const TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

export interface PickleLimits {
  /** Memo entries before the walk stops with a limit finding. */
  maxMemo: number;
  /** Stack depth before the walk stops with a limit finding. */
  maxStack: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = { maxMemo: 4_000_000, maxStack: 1_000_000 };

/** One imported global, with where it was first imported and how it was used. */
export interface PickleImport {
  module: string;
  name: string;
  offset: number;
  count: number;
  /** How many times it was called (REDUCE, NEWOBJ, OBJ, INST, BUILD on its instances). */
  calls: number;
  /** The first call: opcode, offset, and its first string argument when it has one. */
  firstCall?: { op: string; offset: number; arg?: string };
}

export interface PickleWalk {
  /** pickle, torch-legacy (torch.save's pre-1.6 stream) or joblib (numpy arrays inline). */
  kind: 'pickle' | 'torch-legacy' | 'joblib';
  protocol: number;
  pickles: number;
  imports: Map<string, PickleImport>;
  /** Structural findings (parse errors, limits, dynamic imports and calls); classification adds the rest. */
  findings: ScanFinding[];
  /** Bytes consumed. */
  bytes: number;
}

class PickleError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    readonly limit = false,
  ) {
    super(message);
  }
}

/** Walks every pickle in the stream (several may follow each other, as in torch's legacy format). */
export async function walkPickle(
  reader: ByteReader,
  path: string,
  options: { limits?: PickleLimits; onProgress?: (bytes: number) => void; signal?: AbortSignal } = {},
): Promise<PickleWalk> {
  const walk: PickleWalk = { kind: 'pickle', protocol: 0, pickles: 0, imports: new Map(), findings: [], bytes: 0 };
  const ctx: WalkContext = {
    reader,
    path,
    walk,
    limits: options.limits ?? DEFAULT_PICKLE_LIMITS,
    dynamicCalls: 0,
    onProgress: options.onProgress,
    signal: options.signal,
    lastProgress: 0,
  };
  const start = reader.offset;
  try {
    let expected = Infinity;
    for (;;) {
      const top = await new Machine(ctx).run();
      walk.pickles++;
      if (walk.pickles === 1 && top.t === 'int' && top.v === TORCH_LEGACY_MAGIC) {
        // Legacy torch.save: magic, protocol, sys_info, the object, storage keys; then raw storage bytes.
        walk.kind = 'torch-legacy';
        expected = 5;
      }
      if (walk.pickles >= expected) break;
      if (await reader.atEnd()) break;
      await reader.fill(2);
      const b0 = reader.buf[reader.pos];
      const b1 = reader.buf[reader.pos + 1] ?? 0;
      // Another pickle follows only when a PROTO opcode starts it; anything else is trailing data.
      if (b0 !== 0x80 || b1 > 5) {
        walk.findings.push(
          finding(
            'pickle.trailing-data',
            path,
            `bytes after the pickle's STOP opcode are not part of the pickle; pickle.load ignores them`,
            { offset: reader.offset },
          ),
        );
        break;
      }
    }
    if (walk.kind === 'torch-legacy' && walk.pickles < 5 && !(await reader.atEnd()))
      walk.findings.push(
        finding('pickle.parse-error', path, 'legacy torch stream ends early', { offset: reader.offset }),
      );
  } catch (err) {
    if (err instanceof PickleError) {
      walk.findings.push(
        finding(err.limit ? 'pickle.limit' : 'pickle.parse-error', path, err.message, { offset: err.offset }),
      );
    } else throw err;
  }
  if (ctx.dynamicCalls > 0 && ctx.firstDynamicCall) {
    walk.findings.push(
      finding(
        'pickle.dynamic-call',
        path,
        `calls ${ctx.dynamicCalls} value(s) that were not imported globals (the callable is computed at load time)`,
        { offset: ctx.firstDynamicCall },
      ),
    );
  }
  walk.bytes = reader.offset - start;
  return walk;
}

interface WalkContext {
  reader: ByteReader;
  path: string;
  walk: PickleWalk;
  limits: PickleLimits;
  dynamicCalls: number;
  firstDynamicCall?: number;
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
  lastProgress: number;
}

/** One unpickler: its own stack, marks and memo (a nested pickle, as in joblib object arrays, gets a fresh one). */
class Machine {
  private stack: V[] = [];
  private marks: number[] = [];
  /** What STOP left on the stack. */
  private result: V = OTHER;
  /** The opcode step() handed to slowOpcode(), where it starts, and its argument's length. */
  private slowOp = 0;
  private slowOffset = 0;
  private slowLength = 0;
  /** A joblib array's state, from its BUILD to slowOpcode(). */
  private joblibState?: V;
  /** Memo slots by index (pickles number them densely from 0); `memoCount` is how many are set. */
  private memo: (V | undefined)[] = [];
  private memoCount = 0;

  constructor(private readonly ctx: WalkContext) {}

  private fail(message: string, offset: number): never {
    throw new PickleError(message, offset);
  }

  private truncated(op: number, at: number): never {
    this.fail(`stream ends inside opcode 0x${op.toString(16)} (truncated pickle)`, at);
  }

  private pop(at: number): V {
    const base = this.marks.length > 0 ? (this.marks[this.marks.length - 1] ?? 0) : 0;
    if (this.stack.length <= base) this.fail('stack underflow (malformed pickle)', at);
    return this.stack.pop() as V;
  }

  private top(at: number): V {
    const base = this.marks.length > 0 ? (this.marks[this.marks.length - 1] ?? 0) : 0;
    if (this.stack.length <= base) this.fail('stack underflow (malformed pickle)', at);
    return this.stack[this.stack.length - 1] as V;
  }

  private popMark(at: number): V[] {
    const mark = this.marks.pop();
    if (mark === undefined) this.fail('opcode needs a MARK but none is open (malformed pickle)', at);
    return this.stack.splice(mark);
  }

  /** popMark for opcodes that discard what was above the mark (APPENDS, LIST, POP_MARK): nothing is copied. */
  private dropMark(at: number): void {
    const mark = this.marks.pop();
    if (mark === undefined) this.fail('opcode needs a MARK but none is open (malformed pickle)', at);
    this.stack.length = mark;
  }

  private imported(module: string, name: string, at: number): Extract<V, { t: 'global' }> {
    const key = `${module}\u0000${name}`;
    const seen = this.ctx.walk.imports.get(key);
    if (seen) seen.count++;
    else this.ctx.walk.imports.set(key, { module, name, offset: at, count: 1, calls: 0 });
    return { t: 'global', module, name };
  }

  private called(callee: V, op: string, at: number, args?: V): V {
    if (callee.t === 'global') {
      const record = this.ctx.walk.imports.get(`${callee.module}\u0000${callee.name}`);
      if (record) {
        record.calls++;
        if (!record.firstCall) {
          const first = args?.t === 'tuple' ? args.items[0] : undefined;
          record.firstCall = { op, offset: at, ...(first?.t === 'str' ? { arg: first.v.slice(0, 120) } : {}) };
        }
      }
      return { t: 'obj', callee, args };
    }
    if (callee.t === 'obj' && callee.callee && op === 'BUILD') return callee;
    this.ctx.dynamicCalls++;
    this.ctx.firstDynamicCall ??= at;
    return { t: 'obj' };
  }

  private memoPut(index: number, value: V, at: number): void {
    if (this.memo[index] === undefined) this.memoCount++;
    this.memo[index] = value;
    if (this.memoCount > this.ctx.limits.maxMemo)
      throw new PickleError(`more than ${this.ctx.limits.maxMemo} memo entries (scan.limits.maxPickleMemo)`, at, true);
  }

  private memoGet(index: number, at: number): V {
    const v = this.memo[index];
    if (v === undefined) this.fail(`memo entry ${index} is read before it is written (malformed pickle)`, at);
    return v;
  }

  /**
   * Runs to STOP and returns the value left on the stack.
   *
   * Opcodes run in `step()`, a synchronous loop over the bytes already in the reader's buffer. It returns when it
   * needs the reader to do I/O (more bytes, a long string or a payload to skip, a value across the buffer's end, a
   * protocol 0 text argument, joblib's array data); this does that, and the loop goes on. Model pickles are millions
   * of small opcodes, and a synchronous loop over local variables is what makes them cheap.
   */
  async run(): Promise<V> {
    const r = this.ctx.reader;
    for (;;) {
      const status = this.step();
      if (status === DONE) return this.result;
      if (status === NEED_BYTES) {
        await r.fill(9);
        if (r.available === 0) this.fail('stream ends before STOP (truncated pickle)', r.offset);
      } else await this.slowOpcode();
    }
  }

  /**
   * Runs opcodes from the reader's buffer until STOP (DONE), until fewer than 9 bytes are left before the end of the
   * stream is known (NEED_BYTES), or until an opcode needs the reader (SLOW: `slowOp`, `slowOffset` and
   * `slowLength` say which; the reader is at its argument or, for joblib arrays, after BUILD).
   */
  private step(): number {
    const r = this.ctx.reader;
    const walk = this.ctx.walk;
    const stack = this.stack;
    const marks = this.marks;
    const maxStack = this.ctx.limits.maxStack;
    const buf = r.buf;
    const end = buf.length;
    const base = r.offset - r.pos;
    const exhausted = r.exhausted;
    let pos = r.pos;
    let nextProgress = this.ctx.lastProgress + PROGRESS_EVERY;
    for (;;) {
      if (end - pos < 9 && !exhausted) {
        r.pos = pos;
        return NEED_BYTES;
      }
      if (pos >= end) this.fail('stream ends before STOP (truncated pickle)', base + pos);
      const p = pos;
      const at = base + p;
      const op = buf[p] as number;
      const have = end - p - 1;
      pos = p + 1;
      switch (op) {
        case 0x80: // PROTO
          if (have < 1) this.truncated(op, at);
          walk.protocol = Math.max(walk.protocol, buf[p + 1] as number);
          if ((buf[p + 1] as number) > 5) this.fail(`unsupported pickle protocol ${buf[p + 1]}`, at);
          pos = p + 2;
          break;
        case 0x95: // FRAME: framing is transparent to the opcode stream
          if (have < 8) this.truncated(op, at);
          pos = p + 9;
          break;
        case 0x2e: // STOP
          r.pos = pos;
          this.result = stack.length > 0 ? (stack[stack.length - 1] as V) : OTHER;
          this.progress();
          return DONE;
        case 0x28: // MARK
          marks.push(stack.length);
          break;
        case 0x30: {
          // POP: pops a value, or the topmost mark when nothing is above it
          const floor = marks.length > 0 ? (marks[marks.length - 1] as number) : 0;
          if (stack.length > floor) stack.pop();
          else if (marks.length > 0) marks.pop();
          else this.fail('POP on an empty stack (malformed pickle)', at);
          break;
        }
        case 0x31: // POP_MARK
          this.dropMark(at);
          break;
        case 0x32: // DUP
          stack.push(this.top(at));
          break;
        case 0x4a: // BININT
          if (have < 4) this.truncated(op, at);
          stack.push({ t: 'int', v: buf.readInt32LE(p + 1) });
          pos = p + 5;
          break;
        case 0x4b: // BININT1
          if (have < 1) this.truncated(op, at);
          stack.push(smallInt(buf[p + 1] as number));
          pos = p + 2;
          break;
        case 0x4d: // BININT2
          if (have < 2) this.truncated(op, at);
          stack.push(smallInt((buf[p + 1] as number) | ((buf[p + 2] as number) << 8)));
          pos = p + 3;
          break;
        case 0x8a: {
          // LONG1
          if (have < 1) this.truncated(op, at);
          const n = buf[p + 1] as number;
          if (have - 1 < n) return this.slowAt(op, at, p + 2, n);
          stack.push({ t: 'int', v: n <= 16 ? readLong(buf, p + 2, n) : 0 });
          pos = p + 2 + n;
          break;
        }
        case 0x47: // BINFLOAT
          if (have < 8) this.truncated(op, at);
          pos = p + 9;
          stack.push(OTHER);
          break;
        case 0x4e: // NONE
          stack.push(NONE);
          break;
        case 0x88: // NEWTRUE
        case 0x89: // NEWFALSE
          stack.push(OTHER);
          break;
        case 0x8c: // SHORT_BINUNICODE
        case 0x58: // BINUNICODE
        case 0x8d: // BINUNICODE8
        case 0x55: // SHORT_BINSTRING
        case 0x54: {
          // BINSTRING
          const width = op === 0x8c || op === 0x55 ? 1 : op === 0x8d ? 8 : 4;
          if (have < width) this.truncated(op, at);
          const n =
            width === 1
              ? (buf[p + 1] as number)
              : width === 4
                ? op === 0x54
                  ? buf.readInt32LE(p + 1)
                  : buf.readUInt32LE(p + 1)
                : Number(buf.readBigUInt64LE(p + 1));
          if (n < 0) this.fail('negative BINSTRING length', at);
          pos = p + 1 + width;
          if (n <= STR_KEEP && end - pos >= n) {
            // The common case: the string is already in the buffer.
            stack.push({ t: 'str', v: buf.toString(op === 0x55 || op === 0x54 ? 'latin1' : 'utf8', pos, pos + n) });
            pos += n;
            break;
          }
          return this.slowAt(op, at, pos, n);
        }
        case 0x43: // SHORT_BINBYTES
        case 0x42: // BINBYTES
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
        case 0x8b: {
          // LONG4: a huge int whose value nothing needs, skipped like bytes
          const width = op === 0x43 ? 1 : op === 0x42 || op === 0x8b ? 4 : 8;
          if (have < width) this.truncated(op, at);
          const n =
            width === 1
              ? (buf[p + 1] as number)
              : width === 4
                ? buf.readUInt32LE(p + 1)
                : Number(buf.readBigUInt64LE(p + 1));
          pos = p + 1 + width;
          stack.push(op === 0x8b ? { t: 'int', v: 0 } : OTHER);
          if (end - pos >= n) {
            pos += n;
            break;
          }
          // Tensor payloads: a file source moves past them without reading them.
          return this.slowAt(op, at, pos, n);
        }
        case 0x97: // NEXT_BUFFER (out-of-band buffer)
          stack.push(OTHER);
          break;
        case 0x98: // READONLY_BUFFER
          this.top(at);
          break;
        case 0x29: // EMPTY_TUPLE
          stack.push({ t: 'tuple', items: [] });
          break;
        case 0x74: // TUPLE
          stack.push({ t: 'tuple', items: keep(this.popMark(at)) });
          break;
        case 0x85: // TUPLE1
          stack.push({ t: 'tuple', items: [this.pop(at)] });
          break;
        case 0x86: {
          // TUPLE2
          const b = this.pop(at);
          const a = this.pop(at);
          stack.push({ t: 'tuple', items: [a, b] });
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.pop(at);
          const b = this.pop(at);
          const a = this.pop(at);
          stack.push({ t: 'tuple', items: [a, b, c] });
          break;
        }
        case 0x5d: // EMPTY_LIST
        case 0x8f: // EMPTY_SET
          stack.push(OTHER);
          break;
        case 0x6c: // LIST
        case 0x91: // FROZENSET
          this.dropMark(at);
          stack.push(OTHER);
          break;
        case 0x61: // APPEND
          this.pop(at);
          this.top(at);
          break;
        case 0x65: // APPENDS
        case 0x90: // ADDITEMS
          this.dropMark(at);
          this.top(at);
          break;
        case 0x7d: // EMPTY_DICT
          stack.push({ t: 'dict', items: new Map() });
          break;
        case 0x64: {
          // DICT
          const items = this.popMark(at);
          const dict: V = { t: 'dict', items: new Map() };
          for (let i = 0; i + 1 < items.length; i += 2) setItem(dict, items[i] as V, items[i + 1] as V);
          stack.push(dict);
          break;
        }
        case 0x73: {
          // SETITEM
          const value = this.pop(at);
          const key = this.pop(at);
          setItem(this.top(at), key, value);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark(at);
          const dict = this.top(at);
          for (let i = 0; i + 1 < items.length; i += 2) setItem(dict, items[i] as V, items[i + 1] as V);
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop(at);
          const module = this.pop(at);
          if (module.t === 'str' && name.t === 'str') stack.push(this.imported(module.v, name.v, at));
          else {
            walk.findings.push(
              finding(
                'pickle.dynamic-import',
                this.ctx.path,
                'STACK_GLOBAL imports a module/name that is not a literal string (computed at load time)',
                { offset: at },
              ),
            );
            stack.push(OTHER);
          }
          break;
        }
        case 0x6f: {
          // OBJ: class and arguments from the mark
          const items = this.popMark(at);
          const cls = items[0];
          if (!cls) this.fail('OBJ without a class (malformed pickle)', at);
          stack.push(this.called(cls, 'OBJ', at, { t: 'tuple', items: keep(items.slice(1)) }));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop(at);
          const callee = this.pop(at);
          stack.push(this.called(callee, 'REDUCE', at, args));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop(at);
          const cls = this.pop(at);
          stack.push(this.called(cls, 'NEWOBJ', at, args));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          this.pop(at);
          const args = this.pop(at);
          const cls = this.pop(at);
          stack.push(this.called(cls, 'NEWOBJ_EX', at, args));
          break;
        }
        case 0x62: {
          // BUILD: obj.__setstate__(state) — the object's class decides what runs
          const state = this.pop(at);
          const obj = this.top(at);
          if (obj.t === 'obj' && obj.callee) {
            this.called(obj.callee, 'BUILD', at);
            if (obj.callee.module === 'joblib.numpy_pickle' && obj.callee.name === 'NumpyArrayWrapper') {
              // joblib writes the array's bytes right after BUILD and its unpickler reads them there.
              stack.pop();
              stack.push(OTHER);
              this.joblibState = state;
              return this.slowAt(op, at, pos, 0);
            }
          } else if (obj.t !== 'obj' && obj.t !== 'other' && obj.t !== 'dict') {
            this.called(obj, 'BUILD', at);
          }
          break;
        }
        case 0x82: // EXT1
        case 0x83: // EXT2
        case 0x84: {
          // EXT4
          const n = op === 0x82 ? 1 : op === 0x83 ? 2 : 4;
          if (have < n) this.truncated(op, at);
          const code = n === 1 ? (buf[p + 1] as number) : n === 2 ? buf.readUInt16LE(p + 1) : buf.readInt32LE(p + 1);
          pos = p + 1 + n;
          walk.findings.push(
            finding(
              'pickle.extension-code',
              this.ctx.path,
              `imports extension code ${code}: what it names depends on the loading process's copyreg registry`,
              { offset: at },
            ),
          );
          stack.push(OTHER);
          break;
        }
        case 0x51: // BINPERSID
          this.pop(at);
          stack.push(OTHER);
          break;
        case 0x68: // BINGET
          if (have < 1) this.truncated(op, at);
          pos = p + 2;
          stack.push(this.memoGet(buf[p + 1] as number, at));
          break;
        case 0x6a: // LONG_BINGET
          if (have < 4) this.truncated(op, at);
          pos = p + 5;
          stack.push(this.memoGet(buf.readUInt32LE(p + 1), at));
          break;
        case 0x71: // BINPUT
          if (have < 1) this.truncated(op, at);
          pos = p + 2;
          this.memoPut(buf[p + 1] as number, this.top(at), at);
          break;
        case 0x72: // LONG_BINPUT
          if (have < 4) this.truncated(op, at);
          pos = p + 5;
          this.memoPut(buf.readUInt32LE(p + 1), this.top(at), at);
          break;
        case 0x94: // MEMOIZE
          this.memoPut(this.memoCount, this.top(at), at);
          break;
        case 0x49: // INT (also protocol 0 TRUE/FALSE)
        case 0x4c: // LONG
        case 0x46: // FLOAT
        case 0x53: // STRING 'quoted repr'
        case 0x56: // UNICODE raw-unicode-escape
        case 0x63: // GLOBAL module\nname\n
        case 0x69: // INST module\nname\n, arguments from the mark
        case 0x50: // PERSID id\n
        case 0x67: // GET n\n
        case 0x70: // PUT n\n
          // Protocol 0's text opcodes: their arguments are lines, read through the reader.
          return this.slowAt(op, at, pos, 0);
        default:
          this.fail(`invalid opcode 0x${op.toString(16).padStart(2, '0')} (not a pickle, or corrupted)`, at);
      }
      // MARKs count too: a pickle of nothing but MARKs would otherwise grow the mark stack without bound.
      if (stack.length + marks.length > maxStack)
        throw new PickleError(`stack deeper than ${maxStack} (scan.limits.maxPickleStack)`, at, true);
      if (base + pos > nextProgress) {
        r.pos = pos;
        this.progress();
        nextProgress = this.ctx.lastProgress + PROGRESS_EVERY;
      }
    }
  }

  /** Hands an opcode to slowOpcode(): the reader moves to `pos` (its argument), `n` is its length where it has one. */
  private slowAt(op: number, at: number, pos: number, n: number): number {
    this.ctx.reader.pos = pos;
    this.slowOp = op;
    this.slowOffset = at;
    this.slowLength = n;
    return SLOW;
  }

  /** The opcodes that need the reader: strings and payloads that cross the buffer, text arguments, joblib arrays. */
  private async slowOpcode(): Promise<void> {
    const r = this.ctx.reader;
    const stack = this.stack;
    const op = this.slowOp;
    const at = this.slowOffset;
    const n = this.slowLength;
    switch (op) {
      case 0x8c: // SHORT_BINUNICODE
      case 0x58: // BINUNICODE
      case 0x8d: // BINUNICODE8
        stack.push({ t: 'str', v: await this.text(n, 'utf8', at) });
        return;
      case 0x55: // SHORT_BINSTRING
      case 0x54: // BINSTRING
        stack.push({ t: 'str', v: await this.text(n, 'latin1', at) });
        return;
      case 0x43: // SHORT_BINBYTES
      case 0x42: // BINBYTES
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        if (!(await r.skip(n))) this.fail('stream ends inside a bytes value (truncated pickle)', at);
        return;
      case 0x8b: // LONG4
        if (!(await r.skip(n))) this.fail('stream ends inside LONG4 (truncated pickle)', at);
        return;
      case 0x8a: // LONG1 across the end of the buffer
        if (!(await r.fill(n))) this.fail('stream ends inside LONG1 (truncated pickle)', at);
        stack.push({ t: 'int', v: n <= 16 ? readLong(r.buf, r.pos, n) : 0 });
        r.pos += n;
        return;
      case 0x62: // BUILD of a joblib NumpyArrayWrapper
        await this.joblibArray(this.joblibState ?? OTHER, at);
        this.joblibState = undefined;
        return;
      case 0x49: // INT
      case 0x4c: // LONG
      case 0x46: {
        // FLOAT
        const line = await this.line(at);
        const text = line.replace(/L$/, '');
        stack.push(op === 0x46 || !/^-?\d+$/.test(text) ? OTHER : { t: 'int', v: safeInt(text) });
        return;
      }
      case 0x53: // STRING
        stack.push({ t: 'str', v: unquote(await this.line(at)) });
        return;
      case 0x56: {
        // UNICODE
        const line = await this.line(at);
        stack.push({
          t: 'str',
          v: line.replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
        });
        return;
      }
      case 0x63: {
        // GLOBAL
        const module = await this.line(at);
        const name = await this.line(at);
        stack.push(this.imported(module, name, at));
        return;
      }
      case 0x69: {
        // INST
        const module = await this.line(at);
        const name = await this.line(at);
        const args = this.popMark(at);
        const cls = this.imported(module, name, at);
        stack.push(this.called(cls, 'INST', at, { t: 'tuple', items: keep(args) }));
        return;
      }
      case 0x50: // PERSID
        await this.line(at);
        stack.push(OTHER);
        return;
      case 0x67: // GET
        stack.push(this.memoGet(safeIndex(await this.line(at), at), at));
        return;
      case 0x70: // PUT
        this.memoPut(safeIndex(await this.line(at), at), this.top(at), at);
        return;
    }
  }

  private progress(): void {
    const r = this.ctx.reader;
    this.ctx.lastProgress = r.offset;
    this.ctx.onProgress?.(r.offset);
    if (this.ctx.signal?.aborted) throw this.ctx.signal.reason ?? new Error('scan cancelled');
  }

  private async line(at: number): Promise<string> {
    const got = await this.ctx.reader.readLine(LINE_KEEP);
    if (!got) this.fail('stream ends inside a text argument (truncated pickle)', at);
    return got.line.toString('utf8').replace(/\r$/, '');
  }

  private async text(n: number, encoding: BufferEncoding, at: number): Promise<string> {
    const r = this.ctx.reader;
    if (n <= STR_KEEP) {
      if (!(await r.fill(n))) this.fail('stream ends inside a string (truncated pickle)', at);
      const s = r.buf.toString(encoding, r.pos, r.pos + n);
      r.pos += n;
      return s;
    }
    await r.fill(STR_KEEP);
    const head = r.buf.toString(encoding, r.pos, r.pos + Math.min(STR_KEEP, r.available));
    if (!(await r.skip(n))) this.fail('stream ends inside a string (truncated pickle)', at);
    return `${head}…`;
  }

  /** Skips (or, for object arrays, walks) the array data joblib writes after a NumpyArrayWrapper's BUILD. */
  private async joblibArray(state: V, at: number): Promise<void> {
    const r = this.ctx.reader;
    this.ctx.walk.kind = 'joblib';
    const items = state.t === 'dict' ? state.items : new Map<string, V>();
    const shape = items.get('shape');
    const dtype = items.get('dtype');
    const descrValue = dtype?.t === 'obj' && dtype.args?.t === 'tuple' ? dtype.args.items[0] : undefined;
    const descr = descrValue?.t === 'str' ? descrValue.v : undefined;
    if (descr === undefined || shape?.t !== 'tuple' || shape.items.some((d) => d.t !== 'int'))
      this.fail('joblib array without a readable shape and dtype: its data cannot be located', at);
    if (descr.startsWith('O')) {
      // Object arrays are a nested pickle with its own unpickler.
      await new Machine(this.ctx).run();
      return;
    }
    const itemSize = dtypeSize(descr);
    if (itemSize === undefined) this.fail(`joblib array of dtype ${printable(descr)}: its size is unknown`, at);
    let count = 1n;
    for (const d of shape.items) count *= BigInt((d as { v: number | bigint }).v);
    const alignment = items.get('numpy_array_alignment_bytes');
    if (alignment?.t === 'int') {
      const pad = await r.read(1);
      if (!pad || !(await r.skip(pad[0] as number))) this.fail('joblib array padding is truncated', at);
    }
    if (!(await r.skip(Number(count * BigInt(itemSize))))) this.fail('joblib array data is truncated', at);
  }
}

/** Ints up to 65535 (BININT1, BININT2: most ints in model pickles) are shared values, made once each. */
const SMALL_INTS: (V | undefined)[] = [];

function smallInt(n: number): V {
  return (SMALL_INTS[n] ??= { t: 'int', v: n });
}

function keep(items: V[]): V[] {
  return items.length > CONTAINER_KEEP ? items.slice(0, CONTAINER_KEEP) : items;
}

function setItem(dict: V, key: V, value: V): void {
  if (dict.t === 'dict' && key.t === 'str' && dict.items.size < CONTAINER_KEEP) dict.items.set(key.v, value);
}

function readLong(buf: Buffer, pos: number, n: number): bigint {
  if (n === 0) return 0n;
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[pos + i] as number);
  // Two's complement: the top bit of the last byte is the sign.
  if (((buf[pos + n - 1] as number) & 0x80) !== 0) v -= 1n << BigInt(8 * n);
  return v;
}

function safeInt(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

function safeIndex(text: string, at: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new PickleError(`memo index ${printable(text)} is not a number`, at);
  return n;
}

/** Undo Python 2 string repr quoting: 'abc' or "abc" with backslash escapes. */
function unquote(line: string): string {
  const q = line[0];
  const body = (q === "'" || q === '"') && line.endsWith(q) ? line.slice(1, -1) : line;
  return body.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => {
    if (e.startsWith('x') && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', t: '\t', r: '\r', '0': '\0' } as Record<string, string>)[e] ?? e;
  });
}

/** Severity and message for each import, per the policy. */
export function classifyImports(walk: PickleWalk, path: string, policy: GlobalPolicy, strict: boolean): ScanFinding[] {
  const out: ScanFinding[] = [];
  for (const imp of walk.imports.values()) {
    const cls = policy.classify(imp.module, imp.name);
    if (cls.kind === 'allowed') continue;
    // Module and name come from the file: a binary stream taken for a pickle "imports" whatever bytes follow.
    const what = `${printableName(imp.module)}.${printableName(imp.name)}`;
    const use = imp.firstCall
      ? ` and calls it${imp.firstCall.arg !== undefined ? ` with ${printable(imp.firstCall.arg, 80)}` : ''} (${imp.firstCall.op} at byte ${imp.firstCall.offset})`
      : '';
    const times = imp.count > 1 ? ` (${imp.count} times)` : '';
    if (cls.kind === 'denied') {
      out.push(
        finding('pickle.dangerous-global', path, `imports ${what}${use}${times}: it ${cls.why}`, {
          offset: imp.offset,
          severity: cls.severity as Severity,
        }),
      );
    } else if (strict) {
      out.push(
        finding(
          'pickle.not-allowlisted',
          path,
          `imports ${what}${use}${times}, which the strict policy does not allow`,
          {
            offset: imp.offset,
          },
        ),
      );
    } else {
      out.push(
        finding(
          'pickle.unknown-global',
          path,
          `imports ${what}${use}${times}, which is in neither the allowlist nor the denylist: loading it runs that code`,
          { offset: imp.offset },
        ),
      );
    }
  }
  return out;
}
